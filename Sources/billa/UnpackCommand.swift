import ArgumentParser
import BillaKit
import Foundation

extension Unpacker.Target: ExpressibleByArgument {}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a billa pack back out as safetensors or a Hugging Face directory, bit-exact.",
        discussion: """
            Every chunk is checked against its hash while decoding; nothing is written if one fails. A pack of a Meta \
            release unpacks --to hf through the Meta -> HF converter (as billa convert PACK --to hf), and a pack of \
            a Hugging Face directory --to meta through HF -> Meta.
            """)

    @Argument(help: "A .billa pack.")
    var pack: String

    @Option(name: .shortAndLong, help: "Output: a .safetensors file (--to safetensors) or a new directory (--to hf).")
    var output: String

    @Option(name: .long, help: "safetensors, hf, meta, or gguf (a pack of GGUF tensors: quantize --format pack, pack FILE.gguf).")
    var to: Unpacker.Target

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        try reportingErrors {
            let p = try PackReader.open(pack)
            guard p.shardCount == 1 else {
                throw BillaError(.unsupported, file: pack, "is shard \(p.shardIndex + 1) of a \(p.shardCount)-file pack set; unpack takes single-file packs",
                                 remedy: "convert the whole set instead: billa convert \(pack) -o OUT --to hf (or --to meta)")
            }
            try write.check([output], to == .safetensors || to == .gguf ? .file : .directory, inputs: [pack])
            try Unpacker.unpack(p, to: to, output: output, quiet: report.quiet)
            if report.json {
                try printJSON(["path": output, "target": to.rawValue, "tensors": String(p.tensors.count)])
            } else {
                report.say("\(output): \(p.tensors.count) tensors written as \(to.rawValue)")
            }
        }
    }
}
