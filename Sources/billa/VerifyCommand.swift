import ArgumentParser
import BillaKit
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a model. --checksums: check every chunk hash and tensor SHA-256 of a billa pack.")

    @Argument(help: "A .billa pack.")
    var path: String

    @Flag(name: .long, help: "Check the pack's table SHA-256, every chunk's XXH64 and every tensor's and blob's SHA-256.")
    var checksums = false

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if !checksums { throw ValidationError("choose a mode: --checksums") }
    }

    func run() throws {
        try reportingErrors {
            let pack = try PackReader.open(path)
            let meter = ProgressMeter(label: "verifying", total: pack.tensors.reduce(0) { $0 + $1.byteCount }, quiet: report.quiet)
            let r = PackVerifier.verify(pack, progress: meter)
            meter.finish()
            if report.json {
                try printJSON(r)
            } else {
                for item in r.items {
                    print("\(item.ok ? "ok     " : "CORRUPT") \(item.kind) \(item.name)" + (item.message.map { ": \($0)" } ?? ""))
                }
            }
            let bad = r.items.filter { !$0.ok }
            if !bad.isEmpty {
                FileHandle.standardError.write(Data("billa: \(bad.count) of \(r.items.count) items of \(path) are corrupt (first: \(bad[0].kind) '\(bad[0].name)'); re-create the pack with billa pack\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
