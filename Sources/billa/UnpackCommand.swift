import ArgumentParser
import BillaKit
import Foundation

extension Unpacker.Target: ExpressibleByArgument {}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a billa pack back out as safetensors, a Hugging Face or Meta directory, or GGUF, bit-exact.",
        discussion: """
            Every chunk is checked against its hash while decoding; nothing is written if one fails. --to safetensors writes one .safetensors file of every tensor; --to hf and --to meta write a model directory (a pack of a Meta release unpacks --to hf through the Meta -> HF converter, as billa convert PACK --to hf, and a pack of a Hugging Face directory --to meta through HF -> Meta); --to gguf writes back a pack of GGUF tensors (quantize --format pack, pack FILE.gguf).

            Examples:
              billa unpack llama-7b.billa -o llama-7b --to meta
              billa unpack llama-7b.billa -o llama-7b-hf --to hf
              billa unpack llama-7b-q4_k_m.billa -o llama-7b-q4_k_m.gguf --to gguf
            """)

    @Argument(help: "A .billa pack (one file; a shard set is converted with billa convert instead).")
    var pack: String

    @Option(name: .shortAndLong, help: "What to create: a .safetensors file (--to safetensors), a directory (--to hf, --to meta) or a .gguf file (--to gguf).")
    var output: String

    @Option(name: .long, help: "safetensors, hf, meta, or gguf (a pack of GGUF tensors: quantize --format pack, pack FILE.gguf).")
    var to: Unpacker.Target

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        let p = try PackReader.open(pack)
        guard p.shardCount == 1 else {
            throw BillaError(.unsupported, file: pack, "is shard \(p.shardIndex + 1) of a \(p.shardCount)-file pack set; unpack takes single-file packs",
                             remedy: "convert the whole set instead: billa convert \(pack) -o OUT --to hf (or --to meta)")
        }
        try write.check([output], to == .safetensors || to == .gguf ? .file : .directory, inputs: [pack])
        try Unpacker.unpack(p, to: to, output: output, quiet: report.quiet)
        if report.json {
            struct Out: Encodable { let target: String; let tensors: Int }
                try printJSON(command: "unpack", output: output, Out(target: to.rawValue, tensors: p.tensors.count))
        } else {
            report.say("\(output): \(p.tensors.count) tensors written as \(to.rawValue)")
        }
    }
}
