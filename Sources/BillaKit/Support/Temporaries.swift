import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every temporary file and directory this process has made and not yet renamed into place or removed, so an
/// interrupt (`InterruptCleanup`) can remove them all, and the names they use, so a later run can recognise the
/// temporaries of a process that died (`kill -9`, power loss) and remove them.
///
/// Names: a file is written as `.NAME.billa-tmp-PID-N` beside `NAME`, a directory as `.NAME.billa-tmp-PID`, an
/// in-place replacement is staged as `.NAME.billa-new-PID`, and a directory being replaced with `--force` is moved
/// aside as `.NAME.billa-old-PID` for the instant between two renames. The PID says whose it is.
///
/// Creating, renaming into place and removing a temporary all happen under one lock, which the interrupt cleanup
/// takes and never gives back (it ends the process holding it): so no temporary is created after the cleanup ran,
/// and none is half renamed while it runs.
public enum Temporaries {
    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        /// path -> is a directory
        var live: [String: Bool] = [:]
    }

    private static let registry = Registry()

    /// Runs `create` (which makes the temporary at `path`) under the lock, and records `path` when it succeeds.
    public static func make<T>(_ path: String, directory: Bool, _ create: () throws -> T) rethrows -> T {
        registry.lock.lock()
        defer { registry.lock.unlock() }
        let r = try create()
        registry.live[path] = directory
        return r
    }

    /// Runs `settle` (a rename into place, or a removal) under the lock and forgets `path`.
    @discardableResult
    public static func settle<T>(_ path: String, _ settle: () throws -> T) rethrows -> T {
        registry.lock.lock()
        defer { registry.lock.unlock() }
        defer { registry.live[path] = nil }
        return try settle()
    }

    /// Runs `settle` (the rename of `path` to `replacement`) under the lock, forgets `path` and, when `settle`
    /// succeeds and `replacement` is given, records `replacement` (a file) in its place: a file of a set already
    /// under its final name, which an interrupt must still remove until the whole set is in place (`forget`).
    @discardableResult
    public static func settle<T>(_ path: String, replacingWith replacement: String?, _ settle: () throws -> T) rethrows -> T {
        registry.lock.lock()
        defer { registry.lock.unlock() }
        defer { registry.live[path] = nil }
        let r = try settle()
        if let replacement { registry.live[replacement] = false }
        return r
    }

    /// Forgets every path of `paths` at once (a set whose last file is in place: it is the output now).
    public static func forget(_ paths: [String]) {
        registry.lock.lock()
        defer { registry.lock.unlock() }
        for p in paths { registry.live[p] = nil }
    }

    /// Renames the sealed files of a multi-file output into place, the first of `writers` (the file a reader opens,
    /// and the one whose presence says the set is there) last, each kept registered so an interrupt removes the set
    /// until its last rename; then forgets them. A `kill -9` between two renames leaves a set without its first
    /// file, which every reader refuses as incomplete (and the next run refuses as existing, naming it). A failed
    /// rename removes the files of the set already renamed.
    /// `renamed` sees each file once it is in place (the tests check the order).
    public static func installSet(_ writers: [AtomicFileWriter], renamed: (String) -> Void = { _ in }) throws {
        for w in writers { try w.seal() }
        var done = [String]()
        do {
            for w in writers.reversed() {
                try w.commit(keepRegistered: true)
                done.append(w.finalPath)
                renamed(w.finalPath)
            }
        } catch {
            for p in done { settle(p) { _ = unlink(p) } }
            throw error
        }
        forget(done)
    }

    /// Whether this process made `path` and has not settled it.
    static func isLive(_ path: String) -> Bool {
        registry.lock.lock()
        defer { registry.lock.unlock() }
        return registry.live[path] != nil
    }

    /// For the interrupt cleanup only: takes the lock for good (every thread that would create or rename a
    /// temporary now waits until the process ends), removes every live temporary and returns how many.
    static func removeAllForExit() -> Int {
        registry.lock.lock()
        let all = registry.live
        for (path, isDirectory) in all { remove(path, directory: isDirectory) }
        return all.count
    }

    /// Removes a file or a whole directory. Another thread may still be adding a file to a directory being
    /// removed (a hard link into an output being assembled), so a directory is tried again until it is gone.
    static func remove(_ path: String, directory: Bool) {
        guard directory else { unlink(path); return }
        for _ in 0..<20 {
            try? FileManager.default.removeItem(atPath: path)
            var st = stat()
            if lstat(path, &st) != 0 { return }
        }
    }

    // MARK: names

    static func split(_ path: String) -> (parent: String, base: String) {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        return (parentDirectory(trimmed), (trimmed as NSString).lastPathComponent)
    }

    /// NSString's deletingLastPathComponent without it: Foundation on Linux traps on a one-character relative
    /// path ("a"), which made `-o a` kill every write command after its work was done. "" for a bare name, "/"
    /// for a file at the root.
    public static func parentDirectory(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        var parent = p[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return parent.isEmpty ? "/" : String(parent)
    }

    static func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }

    /// `.NAME.billa-KIND-PID` beside `path`.
    static func name(for path: String, kind: String, pid: Int32 = getpid()) -> String {
        let (parent, base) = split(path)
        return join(parent, ".\(base).billa-\(kind)-\(pid)")
    }

    /// The kind (tmp, new, old) and PID of a temporary billa names after `base`, or nil for any other name. The
    /// leading dots are stripped first, so the file an `AtomicFileWriter` writes inside a staged `.NAME.billa-new-PID`
    /// is recognised as well.
    static func parse(_ name: String, base: String) -> (kind: String, pid: Int32)? {
        var rest = Substring(name)
        guard rest.hasPrefix(".") else { return nil }
        while rest.hasPrefix(".") { rest = rest.dropFirst() }
        var b = Substring(base)
        while b.hasPrefix(".") { b = b.dropFirst() }
        guard rest.hasPrefix(b + ".billa-") else { return nil }
        let tail = rest.dropFirst(b.count + ".billa-".count)
        for kind in ["tmp", "new", "old"] where tail.hasPrefix(kind + "-") {
            let digits = tail.dropFirst(kind.count + 1).prefix { $0.isNumber }
            guard let pid = Int32(digits), pid > 0 else { return nil }
            return (kind, pid)
        }
        return nil
    }

    /// Whether process `pid` still runs (EPERM: it does, under another user).
    static func alive(_ pid: Int32) -> Bool {
        if pid == getpid() { return true }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes, and names on stderr, the temporaries that processes no longer running left beside `path` (for the
    /// same output name); a directory one of them was replacing (`.NAME.billa-old-PID`) is named, not removed,
    /// since it may be the only copy of the previous output. Temporaries of this process that it did not make (a
    /// dead process that had the same PID) are stale too. Returns the paths removed.
    @discardableResult
    public static func removeStale(beside path: String) -> [String] {
        let (parent, base) = split(path)
        return removeStale(in: parent) { _ in base }
    }

    /// The same for every file of a set named `PREFIX-0000K-of-0000N.EXT` (a pack shard set, a gguf-split set),
    /// whatever K and N: a run killed while writing a set leaves temporaries of several files, and the next run
    /// may cut the set into a different number of files.
    @discardableResult
    public static func removeStale(besideSetOf path: String) -> [String] {
        let (parent, base) = split(path)
        guard let r = base.range(of: #"-[0-9]{5}-of-[0-9]{5}\."#, options: .regularExpression) else { return removeStale(beside: path) }
        let pattern = "^" + NSRegularExpression.escapedPattern(for: String(base[..<r.lowerBound])) + #"-[0-9]{5}-of-[0-9]{5}\."#
            + NSRegularExpression.escapedPattern(for: String(base[r.upperBound...])) + "$"
        return removeStale(in: parent) { name in
            // The output name a temporary is named after: its leading dots and its `.billa-KIND-...` tail stripped.
            let stem = name.drop { $0 == "." }
            guard let tail = stem.range(of: ".billa-") else { return nil }
            let member = String(stem[..<tail.lowerBound])
            return member.range(of: pattern, options: .regularExpression) != nil ? member : nil
        }
    }

    /// The removal itself, for the names in `parent` whose output name `base` gives.
    private static func removeStale(in parent: String, base: (String) -> String?) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent) else { return [] }
        var removed = [String]()
        for name in names.sorted() {
            guard let b = base(name), let (kind, pid) = parse(name, base: b) else { continue }
            let p = join(parent, name)
            if pid == getpid() { if isLive(p) { continue } } else if alive(pid) { continue }
            var st = stat()
            guard lstat(p, &st) == 0 else { continue }
            if kind == "old" {
                note("\(p) is the previous \(b) that process \(pid) was replacing when it stopped; remove it, or move it back to \(b) if \(b) is missing")
                continue
            }
            remove(p, directory: (st.st_mode & S_IFMT) == S_IFDIR)
            removed.append(p)
            note("removed \(p), a temporary left by process \(pid), which no longer runs")
        }
        return removed
    }

    static func note(_ text: String) {
        StatusLine.standardError.message("note: \(text)\n")
    }

    // MARK: directories

    /// Creates `.NAME.billa-tmp-PID` beside `destination` to assemble a directory output in (after removing stale
    /// ones of dead processes).
    public static func makeDirectory(for destination: String) throws -> String {
        removeStale(beside: destination)
        let tmp = name(for: destination, kind: "tmp")
        let parent = split(destination).parent
        try make(tmp, directory: true) {
            guard mkdir(tmp, 0o755) == 0 else {
                let e = errno
                throw BillaError(.io, file: tmp, "cannot create the output directory: \(String(cString: strerror(e)))",
                                 remedy: "check that \(parent.isEmpty ? "." : parent) exists and is writable")
            }
        }
        return tmp
    }

    /// Removes a temporary directory made by `makeDirectory` (a failed command).
    public static func discardDirectory(_ tmp: String) {
        settle(tmp) { remove(tmp, directory: true) }
    }

    /// Renames the assembled directory `tmp` to `destination`. An existing destination is replaced only when
    /// `OutputGuard` approved it (`--force`): it is moved aside to `.NAME.billa-old-PID`, the new one renamed in,
    /// and the old one removed; both renames happen under the lock, so an interrupt never falls between them.
    public static func install(_ tmp: String, at destination: String) throws {
        let (parent, base) = split(destination)
        let dest = join(parent, base)
        var st = stat()
        let exists = lstat(dest, &st) == 0
        if exists && !OutputGuard.mayReplace(dest) { throw OutputGuard.existing(dest) }
        let old = name(for: dest, kind: "old")
        try settle(tmp) {
            if exists {
                guard rename(dest, old) == 0 else { throw BillaError.fromErrno("rename (the existing output aside)", path: dest) }
                registry.live[old] = (st.st_mode & S_IFMT) == S_IFDIR
            }
            guard rename(tmp, dest) == 0 else {
                let e = BillaError.fromErrno("rename", path: dest)
                if exists, rename(old, dest) == 0 { registry.live[old] = nil }
                throw e
            }
        }
        if exists { settle(old) { remove(old, directory: (st.st_mode & S_IFMT) == S_IFDIR) } }
    }
}
