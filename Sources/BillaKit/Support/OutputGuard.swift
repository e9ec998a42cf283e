import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one rule every write command follows for its outputs, checked before anything is written:
///
/// - an output that is one of the files the command reads (the same device and inode, so a symlink or a hard link
///   to an input counts), or a directory that holds one, is refused, with or without `--force`. The files read are
///   the inputs named and, for a directory, every file in it (its weights, tokenizer, configs and side files,
///   wherever their links point), and for a file of a shard set (`NAME-00001-of-00003.EXT`) every file of the set;
/// - an output that exists is refused unless `force` is given (the message names it and says so); with `force`
///   it is approved here, and the writers (`Temporaries.install`, `AtomicFileWriter`, `XorRecovery`) replace only
///   what was approved, by renaming the finished output over it.
///
/// A directory output that would be replaced is checked as a whole: removing it would remove anything below it,
/// so no input may live below it (compared by the device and inode of every directory above each input, which
/// also catches bind mounts and symlinked parents). A file inside it that is a hard link to an input is not a
/// conflict: removing one name of a file leaves its data under the other.
public enum OutputGuard {
    public enum Kind: Sendable { case file, directory }

    public struct Output: Sendable {
        public var path: String
        public var kind: Kind
        public init(_ path: String, _ kind: Kind) { self.path = path; self.kind = kind }
    }

    struct FileID: Hashable { let dev: UInt64; let ino: UInt64 }

    private final class Approved: @unchecked Sendable {
        let lock = NSLock()
        var ids = Set<FileID>()
    }
    private static let approved = Approved()

    static func id(_ path: String, follow: Bool = true) -> (FileID, isDirectory: Bool)? {
        var st = stat()
        guard (follow ? stat(path, &st) : lstat(path, &st)) == 0 else { return nil }
        return (FileID(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)), (st.st_mode & S_IFMT) == S_IFDIR)
    }

    /// The files a command with these inputs reads, by identity, each with the path that names it in errors.
    static func readFiles(_ inputs: [String]) -> [FileID: String] {
        var out = [FileID: String]()
        func add(_ p: String) { if let (i, _) = id(p), out[i] == nil { out[i] = p } }
        for input in inputs {
            guard let (_, isDir) = id(input) else { continue }
            add(input)
            if isDir {
                let dir = (try? ModelDirectory.resolve(input)) ?? input
                add(dir)
                for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                    let p = dir + "/" + name
                    if let (_, sub) = id(p), !sub { add(p) }
                }
            } else {
                for p in shardSet(of: input) { add(p) }
            }
        }
        return out
    }

    /// Every directory above each file read (through its resolved path), by identity: a directory output that is
    /// one of them would, replaced, take the input with it.
    static func containingDirectories(_ files: [FileID: String]) -> [FileID: String] {
        var out = [FileID: String]()
        for (_, p) in files {
            guard let r = realpath(p, nil) else { continue }
            var dir = String(cString: r)
            free(r)
            while true {
                if let (i, _) = id(dir), out[i] == nil { out[i] = p }
                let up = Temporaries.parentDirectory(dir)
                if up == dir || up.isEmpty { break }
                dir = up
            }
        }
        return out
    }

    /// The other files of the shard set `path` belongs to (`NAME-0000i-of-0000N.EXT`), those that exist.
    public static func shardSet(of path: String) -> [String] {
        let (parent, base) = Temporaries.split(path)
        guard let r = base.range(of: #"-[0-9]{5}-of-[0-9]{5}\."#, options: .regularExpression) else { return [] }
        let pattern = "^" + NSRegularExpression.escapedPattern(for: String(base[..<r.lowerBound])) + #"-[0-9]{5}-of-[0-9]{5}\."#
            + NSRegularExpression.escapedPattern(for: String(base[r.upperBound...])) + "$"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent)) ?? []
        return names.filter { $0.range(of: pattern, options: .regularExpression) != nil }.map { Temporaries.join(parent, $0) }
    }

    /// The files of an existing pack shard set that `billa pack -o OUTPUT --max-shard-size` would replace
    /// (`NAME-0000i-of-0000N.billa` for OUTPUT `NAME.billa`).
    public static func existingPackShards(of output: String) -> [String] {
        shardSet(of: PackSet.fileName(prefix: output.hasSuffix(".billa") ? String(output.dropLast(".billa".count)) : output, index: 0, count: 1))
    }

    /// The files of an existing gguf-split set that `-o OUTPUT --split-max-tensors/--max-shard-size` would replace
    /// or collide with (`NAME-0000i-of-0000N.gguf` for OUTPUT `NAME.gguf`, whatever N): the set's size is known only
    /// once the tensors are cut, so every existing member of any size is checked, inputs among them.
    public static func existingGGUFShards(of output: String) -> [String] {
        shardSet(of: GGUFSplit.path(prefix: GGUFSplit.prefix(forOutput: output), 0, of: 1))
    }

    /// Checks every output against the inputs and the rule for existing outputs; approves, with `force`, the
    /// existing outputs it may replace. Throws the first conflict; nothing is written either way.
    /// For a command that computes for long before it writes one file (imatrix, perplexity's base): the output's
    /// directory must exist now, not be found missing when the temporary file cannot be created at the end.
    /// (Commands that create their output's directories, such as recover xor, do not call this.)
    public static func requireDirectory(of path: String) throws {
        let parent = Temporaries.parentDirectory(path)
        if !parent.isEmpty, id(parent)?.isDirectory != true {
            throw BillaError(.notFound, file: path, "its directory \(parent) does not exist",
                             remedy: "create it first (mkdir -p \(parent)) or choose another output path")
        }
    }

    public static func check(inputs: [String], outputs: [Output], force: Bool) throws {
        let read = readFiles(inputs)
        let above = containingDirectories(read)
        var approve = [FileID]()
        for o in outputs {
            let path = o.path.count > 1 && o.path.hasSuffix("/") ? String(o.path.dropLast()) : o.path
            guard let (oid, isDir) = id(path) else {
                // Absent, or a symlink to nothing: that name is replaced by a rename without touching its target.
                if let (lid, _) = id(path, follow: false) {
                    guard force else { throw existing(path) }
                    approve.append(lid)
                }
                continue
            }
            if let input = read[oid] {
                throw BillaError(.invalidArgument, file: path,
                                 input == path ? "is an input of this command; billa never writes over what it reads"
                                               : "is \(input) (the same file, through a link), which this command reads; billa never writes over its inputs",
                                 remedy: "choose an output path outside the inputs")
            }
            if isDir, let input = above[oid] {
                throw BillaError(.invalidArgument, file: path, "holds \(input), which this command reads; replacing it would delete an input",
                                 remedy: "choose an output path that does not contain the inputs")
            }
            if o.kind == .file && isDir {
                throw BillaError(.invalidArgument, file: path, "is a directory, and this command writes one file there",
                                 remedy: "name the file to write, e.g. \(path)/model.gguf, or remove the directory first")
            }
            guard force else { throw existing(path) }
            approve.append(oid)
            if let (lid, _) = id(path, follow: false) { approve.append(lid) }
        }
        approved.lock.lock()
        approved.ids.formUnion(approve)
        approved.lock.unlock()
    }

    /// Whether `check` approved replacing what is at `path` (the command was given `--force`).
    public static func mayReplace(_ path: String) -> Bool {
        guard let (i, _) = id(path, follow: false) else { return true }
        approved.lock.lock()
        defer { approved.lock.unlock() }
        if approved.ids.contains(i) { return true }
        if let (f, _) = id(path) { return approved.ids.contains(f) }
        return false
    }

    /// The refusal of an existing output, the same words in every command.
    public static func existing(_ path: String) -> BillaError {
        BillaError(.invalidArgument, file: path, "already exists", remedy: "pass --force to replace it, or choose another output path")
    }
}
