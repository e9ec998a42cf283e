import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One file a command will write, planned before anything touches the file system.
public struct PlannedFile: Sendable {
    public enum Content: Sendable {
        case safetensors([TensorPlan], metadata: [String: String])
        case torch([TensorPlan])
        case text(String)
        /// Hard-linked when source and output share a file system, copied otherwise.
        case link(from: String)
        /// Bytes copied out of a container (a pack's tokenizer blob); `source` names it in reports, e.g. `PACK:tokenizer.model`.
        case bytes([UInt8], source: String)
    }
    public let name: String
    public let content: Content

    public init(name: String, content: Content) {
        self.name = name
        self.content = content
    }

    public var tensors: [TensorPlan] {
        switch content {
        case .safetensors(let t, _), .torch(let t): return t
        default: return []
        }
    }

    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }
}

/// What a command reports (`--json`): every output file with its tensors and where each came from.
public struct OutputReport: Encodable, Sendable {
    public struct File: Encodable, Sendable {
        public var name: String
        public var kind: String
        public var bytes: Int
        public var tensors: [TensorEntry]
    }
    public struct TensorEntry: Encodable, Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var source: String
    }
    public var destination: String
    public var dryRun: Bool
    public var files: [File]
    public var tensorBytes: Int
    public var seconds: Double?
    public var notes: [String]

    /// The destination is the report's `output` (formats/json.md), written by the command's envelope.
    enum CodingKeys: String, CodingKey { case dryRun = "dry_run", files, tensorBytes = "tensor_bytes", seconds, notes }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dryRun, forKey: .dryRun)
        try c.encode(files, forKey: .files)
        try c.encode(tensorBytes, forKey: .tensorBytes)
        try c.encodeIfPresent(seconds, forKey: .seconds)
        try c.encode(notes, forKey: .notes)
    }
}

/// A whole output directory, planned. `execute` writes it under a temporary name beside the destination and renames
/// it into place only when every file is complete, so a failure leaves nothing behind.
public struct OutputPlan: Sendable {
    public let destination: String
    public var files: [PlannedFile]
    public var notes: [String] = []
    /// Lossy steps the plan takes knowingly (dropped tensors with their sizes, narrowings): commands print them on
    /// stderr before writing, --quiet or not.
    public var losses: [String] = []
    /// Runs after every file is written and before anything is renamed into place; throwing abandons the output.
    public var verify: (@Sendable () throws -> Void)? = nil

    public init(destination: String, files: [PlannedFile], notes: [String] = []) {
        self.destination = destination
        self.files = files
        self.notes = notes
    }

    public var tensorBytes: Int { files.reduce(0) { $0 + $1.tensorBytes } }

    public func report(dryRun: Bool, seconds: Double? = nil) -> OutputReport {
        OutputReport(destination: destination, dryRun: dryRun, files: files.map { f in
            let kind: String
            var bytes = f.tensorBytes
            switch f.content {
            case .safetensors: kind = "safetensors"
            case .torch: kind = "pytorch-zip"
            case .text(let s): kind = "text"; bytes = s.utf8.count
            case .link(let from):
                kind = "link"
                bytes = ((try? FileManager.default.attributesOfItem(atPath: FileLinker.resolved(from))[.size]) as? Int) ?? 0   // a symlink: its target
            case .bytes(let b, _): kind = "copy"; bytes = b.count
            }
            return OutputReport.File(name: f.name, kind: kind, bytes: bytes, tensors: f.tensors.map {
                OutputReport.TensorEntry(name: $0.name, dtype: $0.dtype, shape: $0.shape, source: $0.provenance)
            })
        }, tensorBytes: tensorBytes, seconds: seconds, notes: notes)
    }

    /// The --dry-run text: each file, then each tensor with its provenance.
    public func describe() -> String {
        var out = "plan: write \(destination) (\(files.count) files, \(ByteFormat.human(tensorBytes)) of tensors)\n"
        for f in files {
            switch f.content {
            case .text: out += "  \(f.name)  (generated)\n"
            case .link(let from): out += "  \(f.name)  <- link or copy of \(from)\n"
            case .bytes(_, let source): out += "  \(f.name)  <- copy of \(source)\n"
            case .safetensors, .torch:
                out += "  \(f.name)  (\(f.tensors.count) tensors, \(ByteFormat.human(f.tensorBytes)))\n"
                for t in f.tensors {
                    out += "    \(t.name) \(t.dtype.rawValue) \(Shape.describe(t.shape)) <- \(t.provenance)\n"
                }
            }
        }
        for n in notes { out += "note: \(n)\n" }
        return out
    }

    /// Writes every file into `.NAME.billa-tmp-PID` beside the destination and renames it into place at the end,
    /// so the destination never looks complete while partial (not even after `kill -9`). An existing destination
    /// is replaced only when `OutputGuard` approved it (`--force`).
    public func execute(progress: ProgressMeter? = nil) throws {
        let dest = destination.hasSuffix("/") && destination.count > 1 ? String(destination.dropLast()) : destination
        if FileManager.default.fileExists(atPath: dest), !OutputGuard.mayReplace(dest) { throw OutputGuard.existing(dest) }
        let tmp = try Temporaries.makeDirectory(for: dest)
        do {
            for f in files { try write(f, into: tmp, progress: progress) }
            try verify?()
            try Temporaries.install(tmp, at: dest)
        } catch {
            Temporaries.discardDirectory(tmp)
            throw error
        }
    }

    /// Replaces files inside the existing `destination` directory: each new file is written beside the old one, then
    /// (after `verify`) the old one is hard-linked to `<name>.backup-<unix time>` and the new one renamed over it.
    /// Returns the backup paths.
    public func executeInPlace(progress: ProgressMeter? = nil) throws -> [String] {
        let dir = destination
        var staged = [(String, String)]()
        do {
            for f in files {
                Temporaries.removeStale(beside: dir + "/" + f.name)
                let tmpName = ".\(f.name).billa-new-\(getpid())"
                try write(PlannedFile(name: tmpName, content: f.content), into: dir, progress: progress,
                          archiveName: TorchWriter.archiveName(for: f.name))
                // Registered once written, so an interrupt removes the staged copies as it does the writers' temporaries.
                Temporaries.make(dir + "/" + tmpName, directory: false) {}
                staged.append((dir + "/" + tmpName, dir + "/" + f.name))
            }
            try verify?()
        } catch {
            for (tmp, _) in staged { Temporaries.settle(tmp) { _ = unlink(tmp) } }
            throw error
        }
        var backups = [String]()
        let stamp = Int(Date().timeIntervalSince1970)
        for (tmp, final) in staged {
            let backup = "\(final).backup-\(stamp)"
            if FileManager.default.fileExists(atPath: final) {
                guard link(final, backup) == 0 else {
                    let e = BillaError.fromErrno("link (backup)", path: backup)
                    unlink(tmp)
                    throw e
                }
                backups.append(backup)
            }
            try Temporaries.settle(tmp) {
                guard rename(tmp, final) == 0 else { throw BillaError.fromErrno("rename", path: final) }
            }
        }
        return backups
    }

    func write(_ f: PlannedFile, into dir: String, progress: ProgressMeter?, archiveName: String? = nil) throws {
        let path = dir + "/" + f.name
        let add: (Int) -> Void = { progress?.add($0) }
        switch f.content {
        case .safetensors(let tensors, let metadata):
            try SafetensorsWriter.write(tensors, metadata: metadata, to: path, progress: add)
        case .torch(let tensors):
            try TorchWriter.write(tensors, to: path, archiveName: archiveName, progress: add)
        case .text(let s):
            let w = try AtomicFileWriter(path: path)
            try w.write(Array(s.utf8))
            try w.commit()
        case .link(let from):
            try FileLinker.linkOrCopy(from: from, to: path, progress: add)
        case .bytes(let b, _):
            let w = try AtomicFileWriter(path: path)
            try w.write(b)
            try w.commit()
            add(b.count)
        }
    }
}

/// Hard link when possible (same file system: no bytes move), else a streamed copy written atomically.
public enum FileLinker {
    /// `from` is resolved first: a Hugging Face snapshot's files are relative symlinks into `../../blobs/`, and a
    /// link to the symlink itself would dangle in the output; the output gets the file the link points at.
    public static func linkOrCopy(from: String, to: String, progress: ((Int) -> Void)? = nil) throws {
        let from = resolved(from)
        if link(from, to) == 0 { return }
        StatusLine.item((to as NSString).lastPathComponent)
        let src = try MappedFile(path: from)
        let out = try AtomicFileWriter(path: to)
        let chunk = 8 << 20
        var o = 0
        while o < src.size {
            let n = min(chunk, src.size - o)
            let piece = try src.bytes(at: o, count: n, what: "file")
            try out.write(piece)
            MappedPages.drop(piece)
            progress?(n)
            o += n
        }
        try out.commit()
    }

    /// The file at the end of `path`'s symlinks (the path itself when it is none, or cannot be resolved: then
    /// opening it reports the error).
    static func resolved(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }
}
