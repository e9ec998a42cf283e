import Foundation
import Testing
@testable import BillaKit
#if canImport(Glibc)
import Glibc
#endif

/// Multi-file outputs (pack shard sets, gguf-split sets) interrupted or killed while a later file is being written: no
/// file of the set may be under its final name (the first shard would look like a loadable model), and the next run
/// of the same command removes the temporaries the dead process left, naming each, and writes the whole set.
@Suite("SIGINT and kill -9 while writing a set of files", .serialized)
struct SplitInterruptTests {
    /// The names in `dir` that are files of a set `PREFIX-0000K-of-0000N.EXT`.
    func members(_ dir: String, prefix: String, ext: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.range(of: "^" + prefix + #"-[0-9]{5}-of-[0-9]{5}\."# + ext + "$", options: .regularExpression) != nil }.sorted()
    }

    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".billa-") }.sorted()
    }

    /// Runs `args` (writing the set PREFIX-…EXT in `dir`), kills it once the temporary of its second file appears,
    /// checks what is left, runs it again and checks that run cleans up and completes the set. Returns the set.
    func killThenRerun(_ args: [String], dir: String, prefix: String, ext: String) throws -> [String] {
        let r = try BillaProcess.interrupt(args, watching: dir, base: prefix, namePrefix: ".\(prefix)-00002-of-", with: SIGKILL)
        #expect(r.sawTemporary, "the command ended before it began its second file: \(r.stderr)")
        #expect(r.signaled && r.status == SIGKILL, "exit \(r.status): \(r.stderr)")
        let visible = try members(dir, prefix: prefix, ext: ext)
        #expect(visible.isEmpty, "after kill -9, files of the set are under their final names: \(visible)")
        let stale = try leftovers(dir)
        #expect(stale.count >= 2 && stale.allSatisfy { $0.hasPrefix(".\(prefix)-0000") && $0.contains(".billa-tmp-") }, "\(stale)")

        let again = try BillaProcess.run(args)
        #expect(again.status == 0, "the next run failed: \(again.stderr)")
        for s in stale { #expect(again.stderr.contains("removed \(dir)/\(s)"), "the next run did not name \(s): \(again.stderr)") }
        let left = try leftovers(dir)
        #expect(left.isEmpty, "left \(left)")
        return try members(dir, prefix: prefix, ext: ext).map { dir + "/" + $0 }
    }

    /// Fails on the code before the change: PackSet renamed each shard as it was finished, so the kill left
    /// out-00001-of-0000N.billa complete under its name, and the next run refused it as an existing output.
    @Test("pack --max-shard-size at real shapes: nothing under the shard names, the next run cleans and completes")
    func killedPackSet() throws {
        let dir = try Fixtures.tempDir("sigkill-pack")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let set = try killThenRerun(["pack", model, "-o", dir + "/out.billa", "--max-shard-size", "100MB", "--quiet"],
                                    dir: dir, prefix: "out", ext: "billa")
        #expect(set.count >= 3, "\(set)")
        let files = try PackSet.open(set[0])
        #expect(files.count == set.count)
        #expect(files.reduce(0) { $0 + $1.tensors.count } == 12)
    }

    @Test("convert --to gguf --split-max-tensors at real shapes: nothing under the split names, the next run cleans and completes")
    func killedGGUFSplit() throws {
        let dir = try Fixtures.tempDir("sigkill-split")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let set = try killThenRerun(["convert", model, "-o", dir + "/out.gguf", "--to", "gguf", "--split-max-tensors", "3", "--quiet"],
                                    dir: dir, prefix: "out", ext: "gguf")
        #expect(set.count == 4, "\(set)")
        let files = try GGUFSplit.open(try GGUFReader.open(set[0]))
        #expect(files.reduce(0) { $0 + $1.tensors.count } == 12)
    }

    @Test("SIGINT while pack writes its second shard: exit 130, the finished first shard's temporary removed too")
    func interruptedPackSet() throws {
        let dir = try Fixtures.tempDir("sigint-pack")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let r = try BillaProcess.interrupt(["pack", model, "-o", dir + "/out.billa", "--max-shard-size", "100MB", "--quiet"],
                                           watching: dir, base: "out", namePrefix: ".out-00002-of-", with: SIGINT)
        #expect(r.sawTemporary, "the command ended before it began its second file: \(r.stderr)")
        #expect(!r.signaled && r.status == 130, "\(r.signaled ? "killed by signal" : "exit") \(r.status): \(r.stderr)")
        let visible = try members(dir, prefix: "out", ext: "billa")
        #expect(visible.isEmpty, "\(visible)")
        let left = try leftovers(dir)
        #expect(left.isEmpty, "left \(left)")
    }

    @Test("the stale temporaries of every file of a set are removed, whatever its size; a live process's are kept")
    func staleSetTemporaries() throws {
        let dir = try Fixtures.tempDir("stale-set")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dead: Int32 = 2_147_483_000   // above any pid_max: kill(2) says ESRCH
        let names = [".m-00001-of-00003.gguf.billa-tmp-\(dead)-0", ".m-00003-of-00003.gguf.billa-tmp-\(dead)-0",
                     ".m-00002-of-00004.gguf.billa-tmp-\(dead)-1", ".m-00001-of-00002.gguf.billa-tmp-\(getppid())-0",
                     ".mm-00001-of-00002.gguf.billa-tmp-\(dead)-0", ".m-00001-of-00002.billa.billa-tmp-\(dead)-0"]
        for n in names { #expect(FileManager.default.createFile(atPath: dir + "/" + n, contents: Data([1]))) }
        let removed = Temporaries.removeStale(besideSetOf: GGUFSplit.path(prefix: dir + "/m", 0, of: 1))
        #expect(removed.sorted() == names.prefix(3).map { dir + "/" + $0 }.sorted(), "\(removed)")
        #expect(try leftovers(dir) == Array(names.suffix(3)).sorted())
    }

    @Test("a set is renamed into place first file last; a failed rename removes the files already renamed")
    func installOrder() throws {
        let dir = try Fixtures.tempDir("install-set")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func writers() throws -> [AtomicFileWriter] {
            try (0..<3).map { k in
                let w = try AtomicFileWriter(path: GGUFSplit.path(prefix: dir + "/s", k, of: 3))
                try w.write([UInt8(k)])
                return w
            }
        }
        // The first file's temporary is gone when its turn comes: its rename fails after the others succeeded.
        let failing = try writers()
        try failing[0].seal()
        unlink(failing[0].temporaryPath)
        #expect(throws: BillaError.self) { try Temporaries.installSet(failing) }
        let after = try members(dir, prefix: "s", ext: "gguf")
        #expect(after.isEmpty, "a failed install left \(after)")
        #expect(try leftovers(dir).isEmpty)
        let set = try writers()
        var order = [String]()
        try Temporaries.installSet(set) { p in
            order.append((p as NSString).lastPathComponent)
            // While the set is going into place it is still the interrupt's to remove.
            #expect(Temporaries.isLive(p))
        }
        #expect(order == ["s-00003-of-00003.gguf", "s-00002-of-00003.gguf", "s-00001-of-00003.gguf"])
        #expect(try members(dir, prefix: "s", ext: "gguf").count == 3)
        for p in set.map(\.finalPath) { #expect(!Temporaries.isLive(p)) }
    }
}
