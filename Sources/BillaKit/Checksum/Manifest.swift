import Foundation

/// A checksum manifest in md5sum / sha256sum format, which is what Meta's `checklist.chk` is:
/// `<hex digest><two spaces or space+*><file name>` per line. The algorithm follows from the digest length.
public struct ManifestEntry: Sendable, Equatable {
    public var digest: String
    public var algorithm: HashAlgorithm
    public var name: String
}

public struct CheckResult: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case ok = "OK", failed = "FAILED", missing = "MISSING" }
    public var name: String
    public var status: Status
    public var algorithm: HashAlgorithm
    public var expected: String
    public var actual: String?
}

public enum Manifest {
    public static func parse(_ path: String) throws -> [ManifestEntry] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BillaError.fromErrno("read", path: path)
        }
        var entries = [ManifestEntry]()
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            guard let space = line.firstIndex(of: " ") else { throw malformed(path, number + 1) }
            let digest = line[..<space].lowercased()
            var rest = line[line.index(after: space)...]
            if rest.first == " " || rest.first == "*" { rest = rest.dropFirst() }
            guard let algorithm = HashAlgorithm.forHexLength(digest.count),
                  digest.allSatisfy({ $0.isHexDigit }), !rest.isEmpty else { throw malformed(path, number + 1) }
            entries.append(ManifestEntry(digest: digest, algorithm: algorithm, name: String(rest)))
        }
        return entries
    }

    /// Checks every entry against the files beside the manifest, hashing on both cores.
    public static func check(_ path: String, progress: ((Int) -> ProgressMeter?)? = nil) throws -> [CheckResult] {
        let entries = try parse(path)
        let dir = Temporaries.parentDirectory(path)
        let resolved = entries.map { $0.name.hasPrefix("/") ? $0.name : (dir.isEmpty ? $0.name : dir + "/" + $0.name) }
        let present = resolved.map { FileManager.default.fileExists(atPath: $0) }
        let total = zip(resolved, present).filter(\.1).reduce(0) { sum, pair in
            sum + ((try? FileManager.default.attributesOfItem(atPath: pair.0)[.size] as? Int) ?? 0)
        }
        let meter = progress?(total)
        let results = ResultSlots<CheckResult>(count: entries.count)
        DispatchQueue.concurrentPerform(iterations: entries.count) { i in
            let e = entries[i]
            guard present[i] else {
                results.set(i, .success(CheckResult(name: e.name, status: .missing, algorithm: e.algorithm, expected: e.digest, actual: nil)))
                return
            }
            do {
                let d = try Checksummer.hashFile(resolved[i], algorithm: e.algorithm, progress: meter)
                results.set(i, .success(CheckResult(name: e.name, status: d.digest == e.digest ? .ok : .failed,
                                                    algorithm: e.algorithm, expected: e.digest, actual: d.digest)))
            } catch {
                results.set(i, .success(CheckResult(name: e.name, status: .failed, algorithm: e.algorithm, expected: e.digest, actual: nil)))
            }
        }
        meter?.finish()
        return results.values.compactMap { try? $0.get() }
    }

    private static func malformed(_ path: String, _ line: Int) -> BillaError {
        BillaError(.invalidHeader, file: path, "line \(line) is not '<md5 or sha256 hex>  <file name>'",
                   remedy: "pass a checklist.chk or a file written by md5sum / sha256sum")
    }
}
