import ArgumentParser
import BillaKit
import Foundation

extension HashAlgorithm: ExpressibleByArgument {}

struct Checksum: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hash files (on both cores), verify a checklist.chk or sha256sum manifest, or hash each tensor.",
        discussion: """
            Output lines are in md5sum/sha256sum format, so they can be checked with those tools. --check reads Meta's checklist.chk or any md5sum/sha256sum output (the algorithm follows from the digest length) and exits 1 when a file does not match. --per-tensor hashes each tensor's dense little-endian bytes, so the same weights give the same digest whether they are stored as .pth or safetensors.

            Examples:
              billa checksum llama-7b/consolidated.00.pth
              billa checksum --check llama-7b/checklist.chk
              billa checksum --per-tensor llama-7b-hf --json
            """)

    @Argument(help: "Files, or model directories with --per-tensor.")
    var paths: [String] = []

    @Option(name: .customLong("algorithm"), help: "sha256 (default) or md5; --check takes the algorithm from the manifest's digest length.")
    var algorithmChoice: HashAlgorithm?

    var algorithm: HashAlgorithm { algorithmChoice ?? .sha256 }

    @Flag(name: .long, help: "Hash each tensor's bytes instead of whole files.")
    var perTensor = false

    @Option(name: .long, help: "Verify a manifest (Meta's checklist.chk, md5sum or sha256sum output).")
    var check: String?

    @OptionGroup var report: ReportOptions

    func validate() throws {
        if check == nil && paths.isEmpty { throw ValidationError("give files to hash, or --check MANIFEST") }
        if check != nil && perTensor { throw ValidationError("--check verifies files; it does not combine with --per-tensor") }
        if check != nil && algorithmChoice != nil { throw ValidationError("--algorithm does not apply to --check: the manifest's digest length says md5 or sha256") }
        if check != nil && !paths.isEmpty { throw ValidationError("--check verifies the files its manifest lists; give no other paths") }
    }

    func run() throws {
        if let check { try runCheck(check) } else if perTensor { try runPerTensor() } else { try runFiles() }
    }

    private func runFiles() throws {
        let sizes = paths.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
        let meter = ProgressMeter(label: algorithm.rawValue, total: sizes.reduce(0, +), quiet: report.quiet)
        let results = Checksummer.hashFiles(paths, algorithm: algorithm, progress: meter)
        meter.finish()
        var failed = false
        var digests = [FileDigest]()
        for r in results {
            switch r {
            case .success(let d): digests.append(d)
            case .failure(let e): failed = true; FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
            }
        }
        if report.json { try printJSON(command: "checksum", FileDigests(files: digests)) } else { for d in digests { print("\(d.digest)  \(d.path)") } }
        if failed { throw ExitCode(ExitStatus.badInput) }   // a file that could not be read is bad input, not a failed check
    }

    private func runPerTensor() throws {
        var all = [TensorDigest]()
        for path in paths {
            let release = try Release.open(path)
            let total = release.tensors.reduce(0) { $0 + $1.tensor.byteCount }
            let meter = ProgressMeter(label: "\(algorithm.rawValue) per tensor", total: total, quiet: report.quiet)
            all += try Checksummer.hashTensors(release, algorithm: algorithm, progress: meter)
            meter.finish()
        }
        if report.json {
            try printJSON(command: "checksum", TensorDigests(tensors: all))
        } else {
            for d in all { print("\(d.digest)  \(d.name)") }
        }
    }

    private func runCheck(_ manifest: String) throws {
        let quiet = report.quiet
        let results = try Manifest.check(manifest) { ProgressMeter(label: "checking", total: $0, quiet: quiet) }
        if report.json {
            try printJSON(command: "checksum", ok: results.allSatisfy { $0.status == .ok }, ManifestCheck(manifest: manifest, files: results))
        } else {
            for r in results { print("\(r.name): \(r.status.rawValue)") }
        }
        let bad = results.filter { $0.status != .ok }
        if !bad.isEmpty {
            FileHandle.standardError.write(Data("billa: \(bad.count) of \(results.count) files did not match \(manifest)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `checksum --json`: the digests of whole files, of each tensor, or the files a manifest lists with their status.
struct FileDigests: Encodable { let files: [FileDigest] }
struct TensorDigests: Encodable { let tensors: [TensorDigest] }
struct ManifestCheck: Encodable { let manifest: String; let files: [CheckResult] }
