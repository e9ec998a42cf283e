import Foundation

/// A model split over several packs (formats/pack.md 7): `NAME-00001-of-00003.billa`, each file a complete pack with
/// its own table, the same metadata and set_id, the blobs in the first. Hosting sites cap file sizes, and a set lets
/// a 13 GB model travel in pieces while every piece stays readable on its own.
public enum PackSet {
    /// `prefix-00001-of-00003.billa` for 0-based `index`.
    public static func fileName(prefix: String, index: Int, count: Int) -> String {
        String(format: "%@-%05d-of-%05d.billa", prefix, index + 1, count)
    }

    /// The prefix, 0-based index and count a shard's file name encodes, or nil.
    static func parse(_ path: String) -> (prefix: String, index: Int, count: Int)? {
        guard path.hasSuffix(".billa") else { return nil }
        let stem = path.dropLast(".billa".count)
        let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[parts.count - 2] == "of", let i = Int(parts[parts.count - 3]), let n = Int(parts[parts.count - 1]),
              parts[parts.count - 3].count == 5, parts[parts.count - 1].count == 5, i >= 1, i <= n else { return nil }
        return (parts.dropLast(3).joined(separator: "-"), i - 1, n)
    }

    /// The files `write` will create for `path` (one entry: `path` itself, when no split is needed).
    static func partition(_ inputs: [PackInput], maxBytes: Int?) -> [[PackInput]] {
        guard let maxBytes, maxBytes > 0, inputs.reduce(0, { $0 + $1.plan.byteCount }) > maxBytes else { return [inputs] }
        var shards = [[PackInput]](), current = [PackInput](), size = 0
        for i in inputs {
            if !current.isEmpty && size + i.plan.byteCount > maxBytes {
                shards.append(current)
                current = []
                size = 0
            }
            current.append(i)
            size += i.plan.byteCount
        }
        if !current.isEmpty { shards.append(current) }
        return shards
    }

    /// Writes `inputs` to `path`, or, when `options.maxShardBytes` asks for it and the tensors exceed it, to a shard
    /// set named after `path` (`x.billa` -> `x-00001-of-0000N.billa`). Returns the files written. Every shard is
    /// written under a temporary name and all are renamed into place only when the last is complete, the first
    /// shard last (`Temporaries.installSet`): a failure, an interrupt or a `kill -9` leaves no set that looks
    /// complete, and the next run removes the temporaries of a killed one.
    @discardableResult
    public static func write(_ inputs: [PackInput], blobs: [PackBlobInput], metadata: PackMetadata, options: PackOptions,
                             to path: String, progress: ((Int) -> Void)? = nil) throws -> [String] {
        let prefix = path.hasSuffix(".billa") ? String(path.dropLast(".billa".count)) : path
        if options.maxShardBytes != nil { Temporaries.removeStale(besideSetOf: fileName(prefix: prefix, index: 0, count: 1)) }
        let shards = partition(inputs, maxBytes: options.maxShardBytes)
        if shards.count <= 1 {
            try PackWriter.write(inputs, blobs: blobs, metadata: metadata, options: options, to: path, progress: progress)
            return [path]
        }
        let setID = PackWriter.setID(of: inputs)   // of the whole set's plan
        var files = [AtomicFileWriter]()
        for (k, shard) in shards.enumerated() {
            var o = options
            o.shard = (k, shards.count, setID)
            let name = fileName(prefix: prefix, index: k, count: shards.count)
            files.append(try PackWriter.sealed(shard, blobs: k == 0 ? blobs : [], metadata: metadata, options: o, to: name, progress: progress))
        }
        try Temporaries.installSet(files)
        return files.map(\.finalPath)
    }

    /// Every file of the set `path` belongs to, in order, each opened and checked against the others. A single-file
    /// pack is a set of one.
    public static func open(_ path: String) throws -> [PackFile] {
        let first = try PackReader.open(path)
        guard first.shardCount > 1 else { return [first] }
        guard let (prefix, index, count) = parse(path), index == first.shardIndex, count == first.shardCount else {
            throw BillaError(.invalidHeader, file: path,
                             "shard \(first.shardIndex + 1) of a \(first.shardCount)-file set, but its name does not say so",
                             remedy: "keep the set's names as billa wrote them: NAME-0000i-of-0000N.billa")
        }
        var files = [PackFile]()
        for k in 0..<count {
            let name = fileName(prefix: prefix, index: k, count: count)
            guard FileManager.default.fileExists(atPath: name) else {
                throw BillaError(.notFound, file: name, "shard \(k + 1) of \(count) of this pack set is missing",
                                 remedy: "download every file of the set into one directory")
            }
            let f = k == index ? first : try PackReader.open(name)
            guard f.shardCount == count, f.shardIndex == k, f.setID == first.setID else {
                throw BillaError(.invalidHeader, file: name, "is not shard \(k + 1) of the same set as \(path) (set ids or numbering differ)",
                                 remedy: "a shard from another pack was mixed in; download the set again")
            }
            files.append(f)
        }
        return files
    }

    /// The whole set as one release: the tensors of every shard, by source group, in shard order; side files (the
    /// blobs) from the first shard, whose path the release carries.
    public static func release(_ shards: [PackFile]) -> Release {
        let first = shards[0].release()
        guard shards.count > 1 else { return first }
        let parts = shards.map { $0.release().files }
        let files = first.files.indices.map { g in
            TensorFile(path: first.files[g].path, format: .billaPack,
                       tensors: parts.flatMap { $0.indices.contains(g) ? $0[g].tensors : [] },
                       metadata: first.files[g].metadata)
        }
        return Release(path: first.path, layout: first.layout, files: files, parameters: first.parameters, tokenizerPath: nil,
                       vocab: first.vocab, warnings: first.warnings)
    }
}
