import Foundation

/// `billa doctor PATH`: says what PATH is and what to run next, from headers, names and checksums only. Weights are
/// never loaded beyond the few rows a check needs (norm vectors, a sample of embedding rows); files are hashed when
/// small or when asked (`hash`), and the report names which were.
public enum ModelDoctor {
    public struct Options: Sendable {
        /// Hash every file, however large (md5 for a Meta release's checklist, SHA-256 otherwise), and compute the
        /// published sums that need a whole tensor.
        public var hash = false
        /// Files up to this size are hashed anyway: it costs less than reading the report.
        public var smallFileBytes = 64 << 20
        /// The published values to look digests up in; tests plant their own.
        public var published: [PublishedValue] = PublishedValues.table
        public init() {}
    }

    public static func diagnose(_ path: String, options: Options = Options()) throws -> DoctorReport {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file or directory", remedy: "check the path")
        }
        let ctx = Context(options: options)
        return isDir.boolValue ? try directory(path, ctx) : try file(path, ctx)
    }

    struct Context {
        let options: Options
    }

    static func directory(_ given: String, _ ctx: Context) throws -> DoctorReport {
        let trimmed = given.count > 1 && given.hasSuffix("/") ? String(given.dropLast()) : given
        var cacheFacts = [DoctorReport.Fact]()
        var dir = trimmed
        if ModelDirectory.isCacheRoot(trimmed) {
            dir = try ModelDirectory.resolve(trimmed)
            let rev = (dir as NSString).lastPathComponent
            cacheFacts.append(.init("hf cache", "\(cacheRepo(trimmed) ?? (trimmed as NSString).lastPathComponent), refs/main -> snapshot \(rev)"))
        } else if let repo = snapshotRepo(trimmed) {
            cacheFacts.append(.init("hf cache", "snapshot \((trimmed as NSString).lastPathComponent) of \(repo)"))
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        var report: DoctorReport
        if names.contains("adapter_config.json") {
            report = try DoctorLoRA.diagnose(dir, ctx)
        } else if names.contains("params.json") || names.contains(where: isMetaShard) {
            report = try DoctorMeta.diagnose(dir, names: names, ctx)
        } else if names.contains("config.json") {
            report = try DoctorHF.diagnose(dir, names: names, given: trimmed, ctx)
        } else if names.contains(where: { $0.hasSuffix(".enc") }) {
            report = try DoctorBelle.diagnose(dir: dir, files: names.filter { $0.hasSuffix(".enc") }.map { dir + "/" + $0 }, ctx)
        } else {
            report = DoctorReport(path: dir, kind: .notRecognised, title: "not recognised: no params.json, config.json, adapter_config.json or .enc files")
            report.fact("seen", names.isEmpty ? "an empty directory" : list(names))
            if let w = names.first(where: { $0.hasSuffix(".gguf") || $0.hasSuffix("." + PackLayout.fileExtension) }) {
                report.next.append("billa doctor \(shellQuoted(dir + "/" + w))")
            }
        }
        report.path = given
        if dir != given && dir != trimmed { report.resolvedPath = dir }
        report.facts.insert(contentsOf: cacheFacts, at: 0)
        return report
    }

    static func file(_ path: String, _ ctx: Context) throws -> DoctorReport {
        if path.hasSuffix(".enc") { return try DoctorBelle.diagnose(dir: nil, files: [path], ctx) }
        let mapped = try MappedFile(path: path)
        switch FormatSniffer.detect(mapped) {
        case .gguf: return try DoctorFiles.gguf(path, mapped, ctx)
        case .billaPack: return try DoctorFiles.pack(path, mapped, ctx)
        case .torchZip, .safetensors: return try DoctorFiles.tensorFile(path, ctx)
        default:
            var report = DoctorReport(path: path, kind: .notRecognised, title: "not recognised: not a GGUF, pack, torch zip, safetensors or BELLE .enc file")
            let head = (try? mapped.bytes(at: 0, count: min(16, mapped.size), what: "header")).map { Array($0) } ?? []
            report.fact("size", "\(mapped.size) bytes")
            report.fact("first bytes", head.map { String(format: "%02x", $0) }.joined(separator: " "))
            if path.hasSuffix(".chk") { report.next.append("billa checksum --check \(shellQuoted(path))") }
            return report
        }
    }

    static func isMetaShard(_ name: String) -> Bool { name.hasPrefix("consolidated.") && name.hasSuffix(".pth") }

    /// "models--ORG--NAME" -> "ORG/NAME".
    static func cacheRepo(_ root: String) -> String? {
        let last = (root as NSString).lastPathComponent
        guard last.hasPrefix("models--") else { return nil }
        return last.dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
    }

    /// The cache repository of a `models--ORG--NAME/snapshots/REV` directory.
    static func snapshotRepo(_ dir: String) -> String? {
        let parts = dir.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[parts.count - 2] == "snapshots" else { return nil }
        return cacheRepo(parts[parts.count - 3])
    }

    static func list(_ names: [String], limit: Int = 12) -> String {
        names.count <= limit ? names.joined(separator: ", ") : names.prefix(limit).joined(separator: ", ") + ", ... (\(names.count) in all)"
    }

    /// `s` as one shell word.
    static func shellQuoted(_ s: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+,%")
        if !s.isEmpty, s.allSatisfy({ safe.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// A sibling output name for next-step commands: "DIR-hf", "NAME-q4_k_m.gguf".
    static func outputName(_ path: String, _ suffix: String) -> String {
        var base = path.hasSuffix("/") ? String(path.dropLast()) : path
        for ext in [".gguf", "." + PackLayout.fileExtension] where base.hasSuffix(ext) { base = String(base.dropLast(ext.count)) }
        return shellQuoted(base + suffix)
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
    }

    /// Hashes `path` with each algorithm when it is small or hashing was asked for; looks the digests up.
    /// Returns the digests computed (empty when the file was left alone, which the report then says).
    @discardableResult
    static func hashAndLookUp(_ path: String, _ algorithms: [HashAlgorithm], expected: String? = nil, into report: inout DoctorReport,
                              _ ctx: Context) throws -> [HashAlgorithm: String] {
        let size = fileSize(path)
        let name = (path as NSString).lastPathComponent
        guard ctx.options.hash || size <= ctx.options.smallFileBytes else {
            if !report.notHashed.contains(name) { report.notHashed.append(name) }
            return [:]
        }
        var out = [HashAlgorithm: String]()
        for a in algorithms {
            let d = try Checksummer.hashFile(path, algorithm: a).digest
            out[a] = d
            let exp = expected.flatMap { HashAlgorithm.forHexLength($0.count) == a ? $0.lowercased() : nil }
            report.hashed.append(.init(file: name, algorithm: a.rawValue, digest: d, sizeBytes: size, expected: exp, matches: exp.map { $0 == d }))
            for k in PublishedValues.lookup(d, in: ctx.options.published) {
                report.knownFiles.append(known(name, k, how: "hashed"))
            }
        }
        return out
    }

    static func known(_ file: String, _ k: PublishedValue, how: String) -> DoctorReport.KnownFile {
        DoctorReport.KnownFile(file: file, algorithm: k.algorithm?.rawValue ?? "sum", digest: k.digest ?? "", model: k.model,
                               official: "\(k.model) \(k.file)", source: k.source, how: how)
    }

    /// The dtype mix of tensors: "f16 x 20, f32 x 5".
    static func dtypeMix<S: Sequence>(_ dtypes: S) -> String where S.Element == DType {
        var counts = [String: Int]()
        for d in dtypes { counts[d.rawValue, default: 0] += 1 }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) x \($0.value)" }.joined(separator: ", ")
    }
}
