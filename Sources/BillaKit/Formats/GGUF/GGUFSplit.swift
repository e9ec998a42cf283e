import Foundation

/// How `--split-max-tensors N` / `--max-shard-size SIZE` cut a GGUF output into a gguf-split set.
public enum GGUFSplitRule: Sendable, Equatable {
    /// A new file every N tensors (llama-gguf-split --split-max-tensors).
    case maxTensors(Int)
    /// A new file when the next tensor's padded data would pass this many bytes (llama-gguf-split --split-max-size;
    /// metadata is not counted). A tensor larger than the limit gets a file of its own.
    case maxBytes(Int)
}

/// llama.cpp's gguf-split sets (tools/gguf-split/gguf-split.cpp, llama_split_path): files `PREFIX-%05d-of-%05d.gguf`;
/// the first holds every metadata key of the model, each file has `split.no` (u16, 0-based), `split.count` (u16)
/// and `split.tensors.count` (i32, the whole model's), and its own tensor infos with offsets into its own data
/// section, aligned to 32. Reading any file of a set reads the whole model; a missing or foreign file is refused.
public enum GGUFSplit {
    public static let noKey = "split.no"
    public static let countKey = "split.count"
    public static let tensorsKey = "split.tensors.count"
    static let splitKeys: Set<String> = [noKey, countKey, tensorsKey]

    /// llama_split_path: "PREFIX-00001-of-00003.gguf" for index 0 of 3.
    public static func path(prefix: String, _ index: Int, of count: Int) -> String {
        String(format: "%@-%05d-of-%05d.gguf", prefix, index + 1, count)
    }

    /// The prefix of an output: `-o model.gguf` writes model-00001-of-0000N.gguf, as convert_hf_to_gguf.py does.
    public static func prefix(forOutput output: String) -> String {
        output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output
    }

    /// The model's tensors cut by `rule`, as llama-gguf-split cuts them.
    public static func groups<T>(_ tensors: [T], bytes: (T) -> Int, rule: GGUFSplitRule) -> [[T]] {
        var out = [[T]]()
        var current = [T]()
        var size = 0
        for (i, t) in tensors.enumerated() {
            let padded = (bytes(t) + GGUFLayout.defaultAlignment - 1) / GGUFLayout.defaultAlignment * GGUFLayout.defaultAlignment
            let cut: Bool
            switch rule {
            case .maxTensors(let n): cut = i > 0 && i % n == 0
            case .maxBytes(let limit): cut = !current.isEmpty && size + padded > limit
            }
            if cut {
                out.append(current)
                current = []
                size = 0
            }
            current.append(t)
            size += padded
        }
        if !current.isEmpty || out.isEmpty { out.append(current) }
        return out
    }

    /// The metadata of file `index` of `count`: the model's keys in the first file only, then split.no,
    /// split.tensors.count and split.count, in the order llama-gguf-split leaves them (it sets split.count last).
    static func metadata(_ model: GGUFMetadata, index: Int, count: Int, tensors: Int) -> GGUFMetadata {
        var m = GGUFMetadata()
        if index == 0 { m.entries = model.entries.filter { !splitKeys.contains($0.key) } }
        m.entries.append((key: noKey, value: .u16(UInt16(index))))
        m.entries.append((key: tensorsKey, value: .i32(Int32(tensors))))
        m.entries.append((key: countKey, value: .u16(UInt16(count))))
        return m
    }

    /// Writes the set; every file is written under a temporary name and all are renamed into place only when the
    /// last is complete, the first file last (`Temporaries.installSet`): after a `kill -9` no file of the set, or
    /// a set without its first file, is under the output names. Returns the paths.
    @discardableResult
    public static func write(metadata: GGUFMetadata, tensors: [TensorPlan], rule: GGUFSplitRule, output: String,
                             progress: ((Int) -> Void)? = nil) throws -> [String] {
        if case .maxTensors(let n) = rule, n < 1 {
            throw BillaError(.invalidArgument, file: output, "--split-max-tensors \(n) is not a tensor count", remedy: "pass a positive number")
        }
        if case .maxBytes(let n) = rule, n < 1 {
            throw BillaError(.invalidArgument, file: output, "--max-shard-size \(n) is not a size", remedy: "pass e.g. 4GB or 500MB")
        }
        if let a = metadata[GGUFLayout.alignmentKey], a.intValue != GGUFLayout.defaultAlignment {
            throw BillaError(.unsupported, file: output, "the model sets general.alignment \(a.intValue ?? 0); gguf-split sets assume 32",
                             remedy: "write a single file (omit --split-max-tensors / --max-shard-size)")
        }
        let groups = GGUFSplit.groups(tensors, bytes: { Shape.byteCount($0.shape, $0.dtype) ?? 0 }, rule: rule)
        guard groups.count <= Int(UInt16.max) else {
            throw BillaError(.invalidArgument, file: output, "the rule makes \(groups.count) files; split.count is a u16",
                             remedy: "pass a larger --max-shard-size or --split-max-tensors")
        }
        let prefix = prefix(forOutput: output)
        Temporaries.removeStale(besideSetOf: path(prefix: prefix, 0, of: 1))
        var files = [AtomicFileWriter]()
        for (i, g) in groups.enumerated() {
            let w = try GGUFWriter(path: path(prefix: prefix, i, of: groups.count), alignment: GGUFLayout.defaultAlignment)
            try w.writeAll(metadata: GGUFSplit.metadata(metadata, index: i, count: groups.count, tensors: tensors.count), tensors: g, progress: progress)
            files.append(try w.sealed())
        }
        try Temporaries.installSet(files)
        return files.map(\.finalPath)
    }

    // MARK: reading

    /// The files of the set `file` belongs to, in order, checked: each present, the same split.count and
    /// split.tensors.count, split.no equal to its place, the tensor counts adding up, no tensor twice. A file
    /// without split keys (or with split.count 0 or 1, as a merge writes) is a set of one.
    public static func open(_ file: GGUFFile) throws -> [GGUFFile] {
        guard let count = file.metadata[countKey]?.intValue, count > 1 else { return [file] }
        let path = file.path
        func bad(_ f: String, _ what: String) -> BillaError {
            BillaError(.invalidHeader, file: f, "gguf-split set: \(what)",
                       remedy: "the files come from different splits or one is damaged; download the set again (or merge it with llama-gguf-split --merge)")
        }
        guard let index = file.metadata[noKey]?.intValue, index >= 0, index < count else {
            throw bad(path, "split.count is \(count) but split.no is missing or out of range")
        }
        let suffix = String(format: "-%05d-of-%05d.gguf", index + 1, count)
        guard path.hasSuffix(suffix), path.count > suffix.count else {
            throw BillaError(.invalidArgument, file: path, "this is file \(index + 1) of a \(count)-file gguf-split set, but its name does not end in \(suffix)",
                             remedy: "rename the files back to llama.cpp's PREFIX-0000K-of-0000N.gguf names, so the other files can be found")
        }
        let prefix = String(path.dropLast(suffix.count))
        let total = file.metadata[tensorsKey]?.intValue
        var files = [GGUFFile]()
        var names = Set<String>()
        for i in 0..<count {
            let p = GGUFSplit.path(prefix: prefix, i, of: count)
            let g: GGUFFile
            if i == index {
                g = file
            } else {
                guard FileManager.default.fileExists(atPath: p) else {
                    throw BillaError(.notFound, file: p, "file \(i + 1) of the \(count)-file gguf-split set of \(path) is missing",
                                     remedy: "download \((p as NSString).lastPathComponent) next to the other files of the set")
                }
                g = try GGUFReader.open(p)
            }
            guard g.metadata[noKey]?.intValue == i else { throw bad(p, "split.no is \(g.metadata[noKey]?.intValue.map(String.init) ?? "missing"), expected \(i)") }
            guard g.metadata[countKey]?.intValue == count else { throw bad(p, "split.count differs from \(path)'s \(count)") }
            guard g.metadata[tensorsKey]?.intValue == total else { throw bad(p, "split.tensors.count differs from \(path)'s") }
            for t in g.tensors where !names.insert(t.name).inserted { throw bad(p, "tensor '\(t.name)' is in two files of the set") }
            files.append(g)
        }
        guard let total, names.count == total else {
            throw bad(path, "the files hold \(names.count) tensors but split.tensors.count says \(total.map(String.init) ?? "nothing")")
        }
        return files
    }
}
