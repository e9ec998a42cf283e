import Foundation

/// Where a model directory's files really are. The Hugging Face hub cache (`huggingface_hub`, `~/.cache/huggingface/
/// hub`) keeps a repository as `models--ORG--NAME/` with `blobs/` (the files, named by hash), `snapshots/REV/` (one
/// directory per revision, made of relative symlinks into `../../blobs/`) and `refs/main` (the revision `main`
/// points at). billa reads a snapshot directory like any other (every reader opens through the links), and takes
/// the cache root too, reading the snapshot `refs/main` names.
public enum ModelDirectory {
    /// `path` itself, or for a cache root the snapshot directory of `refs/main`. Throws, naming the revisions
    /// there are, when a cache root has no `refs/main` or its snapshot is missing.
    public static func resolve(_ path: String) throws -> String {
        let dir = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard isCacheRoot(dir) else { return dir }
        let snapshots = dir + "/snapshots"
        let revisions = ((try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        let refs = refNames(dir + "/refs")
        guard let data = FileManager.default.contents(atPath: dir + "/refs/main") else {
            throw BillaError(.notFound, file: dir + "/refs/main",
                             "this Hugging Face cache entry has no refs/main, so billa cannot tell which revision to read (refs: \(refs.isEmpty ? "none" : refs.joined(separator: ", ")); snapshots: \(revisions.isEmpty ? "none" : revisions.joined(separator: ", ")))",
                             remedy: revisions.isEmpty ? "download the model again (huggingface-cli download)"
                                 : "pass the snapshot to read, e.g. \(snapshots)/\(revisions[0])")
        }
        let revision = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let snapshot = snapshots + "/" + revision
        var isDir: ObjCBool = false
        guard !revision.isEmpty, !revision.contains("/"), FileManager.default.fileExists(atPath: snapshot, isDirectory: &isDir), isDir.boolValue else {
            throw BillaError(.notFound, file: snapshot, "refs/main names revision '\(revision)', but there is no such snapshot (snapshots: \(revisions.isEmpty ? "none" : revisions.joined(separator: ", ")))",
                             remedy: revisions.isEmpty ? "download the model again (huggingface-cli download)"
                                 : "pass the snapshot to read, e.g. \(snapshots)/\(revisions[0]), or download the model again")
        }
        return snapshot
    }

    /// A directory with `snapshots/` and `blobs/` or `refs/`, and no model files of its own.
    static func isCacheRoot(_ dir: String) -> Bool {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir + "/snapshots", isDirectory: &isDir), isDir.boolValue else { return false }
        guard fm.fileExists(atPath: dir + "/blobs") || fm.fileExists(atPath: dir + "/refs") else { return false }
        return !fm.fileExists(atPath: dir + "/config.json") && !fm.fileExists(atPath: dir + "/params.json")
    }

    /// The refs under `refs/` (main, pr/1, ...).
    static func refNames(_ refs: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: refs) else { return [] }
        var out = [String]()
        while let name = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: refs + "/" + name, isDirectory: &isDir), !isDir.boolValue { out.append(name) }
        }
        return out.sorted()
    }
}
