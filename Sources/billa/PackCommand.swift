import ArgumentParser
import BillaKit
import Foundation

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a model as a billa pack: zstd-compressed, checksummed, random-access (formats/pack.md).",
        discussion: """
            SRC is a Meta or Hugging Face directory, a single .pth, .bin, .safetensors or .gguf file. Floats are split into byte planes so their exponents compress; every chunk and tensor is hashed. The pack is written to a temporary file and renamed into place. billa reads a pack wherever it reads a model (inspect, convert, verify, generate); billa unpack writes the original files back.

            Examples:
              billa pack llama-7b -o llama-7b.billa
              billa pack llama-65b -o llama-65b.billa --max-shard-size 4GB
              billa pack llama-7b-hf -o llama-7b-q4_k_m.billa --quantize q4_k_m
            """)

    @Argument(help: "A model directory or tensor file.")
    var source: String

    @Option(name: .shortAndLong, help: "The pack file to write (conventionally NAME.billa).")
    var output: String

    @Option(name: .customLong("level"), help: "zstd level for the non-exponent planes, 1-22 (default 3; 20-22 are zstd's slow ultra levels).")
    var levelChoice: Int32?

    var level: Int32 { levelChoice ?? 3 }

    @Option(name: .long, help: "Uncompressed bytes per chunk, e.g. 1MiB (the default) or 64KiB.")
    var chunkSize: String?

    @Flag(name: .long, help: "Store every tensor uncompressed and page-aligned, for zero-copy mmap.")
    var raw = false

    @Option(name: .long, help: "Split into a shard set of files holding at most SIZE of tensors each (e.g. 4GB): NAME-00001-of-0000N.billa.")
    var maxShardSize: String?

    @Option(name: .long, help: "Quantize while packing, as billa quantize would (q8_0, q4_k_m, ...); GGUF tensor names.")
    var quantize: String?

    @OptionGroup var drops: DropOptions
    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        // The range zstd itself accepts (ZSTD_maxCLevel), so help, validation and the library agree.
        guard (1...22).contains(level) else { throw ValidationError("--level must be 1-22 (zstd's levels), not \(level)") }
        if let maxShardSize, (ByteFormat.parse(maxShardSize) ?? 0) <= 0 {
            throw ValidationError("--max-shard-size must be a size such as 4GB or 500MiB")
        }
        if quantize != nil, maxShardSize != nil {
            throw ValidationError("--max-shard-size does not apply to --quantize: a quantized pack is one file")
        }
        if raw, levelChoice != nil { throw ValidationError("--level does not apply to --raw: raw tensors are stored uncompressed") }
        if raw, chunkSize != nil { throw ValidationError("--chunk-size does not apply to --raw: raw tensors are stored whole, not in chunks") }
        if let chunkSize {
            guard let n = ByteFormat.parse(chunkSize), n >= 64, n <= PackLayout.maxChunkBytes, n % 8 == 0 else {
                throw ValidationError("--chunk-size must be a multiple of 8 bytes between 64 B and 256 MiB")
            }
        }
    }

    func run() throws {
        try write.check([output] + (maxShardSize != nil ? OutputGuard.existingPackShards(of: output) : []), .file, inputs: [source])
        if let quantize {
            guard let recipe = QuantRecipe(name: quantize) else {
                throw BillaError(.invalidArgument, "--quantize \(quantize) is not a type", remedy: "use one of \(QuantRecipe.names)")
            }
            var options = PackOptions(level: level, raw: raw)
            if let chunkSize, let n = ByteFormat.parse(chunkSize) { options.chunkBytes = n }
            var export = GGUFExportOptions(recipe: recipe)
            export.drops = drops.policy
            export.narrowing = narrowing.make()
            try runQuantizedPack(source: source, output: output, export: export, options: options, report: report, command: "pack")
            return
        }
        let release = try Release.open(source)
        let start = Date()
        var options = PackOptions(level: level, raw: raw)
        if let chunkSize, let n = ByteFormat.parse(chunkSize) { options.chunkBytes = n }
        options.maxShardBytes = maxShardSize.flatMap(ByteFormat.parse)
        let written = try Packer.pack(release, options: options, to: output, quiet: report.quiet)
        let seconds = Date().timeIntervalSince(start)
        let first = written.first ?? output   // one file, or the first of the set written in its place
        let packs = try PackSet.open(first)
        let original = packs.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.byteCount } }
        let stored = packs.reduce(0) { $0 + $1.file.size }
        let summary = PackSummary(files: packs.map(\.path), tensors: packs.reduce(0) { $0 + $1.tensors.count }, tensorBytes: original,
                                  fileBytes: stored, ratio: original > 0 ? Double(stored) / Double(original) : 1, seconds: seconds)
        if report.json { try printJSON(command: "pack", output: first, summary) } else {
            report.say("\(first)\(packs.count > 1 ? " (1 of \(packs.count) files)" : ""): \(summary.tensors) tensors, "
                  + "\(ByteFormat.human(original)) -> \(ByteFormat.human(stored)) " + String(format: "(%.3f) in %.1f s", summary.ratio, seconds))
        }
        for w in release.warnings { warn(w) }
    }
}

/// `pack --json` and `quantize --format pack --json`: the envelope's `output` is the (first) pack file written.
struct PackSummary: Encodable {
    /// Every file written: one, or the shard set.
    var files: [String]
    var tensors: Int
    var tensorBytes: Int
    var fileBytes: Int
    var ratio: Double
    var seconds: Double

    enum CodingKeys: String, CodingKey { case files, tensors, tensorBytes = "tensor_bytes", fileBytes = "file_bytes", ratio, seconds }
}

extension DType: ExpressibleByArgument {
    public init?(argument: String) {
        let names: [String: DType] = ["bf16": .bf16, "fp16": .f16, "f16": .f16, "fp32": .f32, "f32": .f32]
        guard let d = names[argument.lowercased()] ?? DType(rawValue: argument.uppercased()) else { return nil }
        self = d
    }
}

/// Measurement helpers for scripts/bench/pack (hidden: not a user command).
struct PackBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack-bench", abstract: "Benchmark helpers for scripts/bench/pack.", shouldDisplay: false)

    @Argument(help: "synth | codec | read")
    var mode: String

    @Option var dtype: DType = .bf16
    @Option var layers = 1
    @Option var level: Int32 = 3
    @Option(name: .shortAndLong) var output: String?
    @Option var pack: String?
    @Option var tensor: String?

    func run() throws {
        switch mode {
        case "synth":
            guard let output else { throw ValidationError("synth needs -o") }
            try PackBenchmark.writeLayers(dtype, layers: layers, to: output)
        case "codec":
            // One q_proj-sized tensor plus one gate_proj-sized: 64 + 176 M elements would be too slow per run,
            // so the codec is timed on the q_proj shape (16.8 M elements).
            let data = PackBenchmark.synthetic(dtype, count: 4096 * 4096, seed: 1)
            let r = try PackBenchmark.codecOneCore(data, dtype: dtype, options: PackOptions(level: level))
            try printJSON(command: "pack-bench", r)
        case "read":
            guard let pack, let tensor else { throw ValidationError("read needs --pack and --tensor") }
            try printJSON(command: "pack-bench", ["seconds": try PackBenchmark.oneTensorSeconds(pack, tensor: tensor)])
        default:
            throw ValidationError("mode must be synth, codec or read")
        }
    }
}
