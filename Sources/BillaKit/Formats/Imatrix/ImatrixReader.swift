import Foundation

extension ImportanceMatrix {
    /// Reads either file llama-imatrix writes: a GGUF imatrix when the file starts with GGUF's magic, else the
    /// legacy `.dat` (as llama.cpp's loader decides). Every length is checked against the file before it is used.
    public static func read(_ path: String) throws -> ImportanceMatrix {
        let file = try MappedFile(path: path)
        if file.size >= 4, file.all.loadUnaligned(as: UInt32.self).littleEndian == GGUFLayout.magic {
            return try readGGUF(try GGUFReader.open(file))
        }
        return try readLegacy(file)
    }

    /// Whether `path` is a GGUF imatrix (`general.type = imatrix`), so that `inspect` describes it instead of
    /// reporting a model with no architecture. Anything unreadable is simply not one.
    public static func isGGUFImatrix(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
              let g = try? GGUFReader.open(path) else { return false }
        return g.metadata[ImatrixKeys.type]?.stringValue == ImatrixKeys.typeValue
    }

    static func readGGUF(_ g: GGUFFile) throws -> ImportanceMatrix {
        let path = g.path
        func bad(_ what: String, tensor: String? = nil) -> BillaError {
            BillaError(.invalidHeader, file: path, tensor: tensor, "not an importance matrix: \(what)",
                       remedy: "pass the file llama-imatrix or billa imatrix wrote (a model GGUF is not an imatrix)")
        }
        var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
        for t in g.tensors {
            if t.name.hasSuffix(ImatrixKeys.sumsSuffix) { sums[String(t.name.dropLast(ImatrixKeys.sumsSuffix.count))] = t }
            else if t.name.hasSuffix(ImatrixKeys.countsSuffix) { counts[String(t.name.dropLast(ImatrixKeys.countsSuffix.count))] = t }
        }
        guard !sums.isEmpty || !counts.isEmpty else {
            throw bad(g.architecture.map { "it is a \($0) model (no NAME.in_sum2 / NAME.counts tensors)" } ?? "it holds no NAME.in_sum2 / NAME.counts tensors")
        }
        var entries: [String: Entry] = [:]
        for name in Set(sums.keys).union(counts.keys) {
            guard let s = sums[name], let c = counts[name] else {
                throw bad("\(name) has \(sums[name] == nil ? "counts but no sums" : "sums but no counts")", tensor: name)
            }
            guard s.dtype == .f32, c.dtype == .f32 else { throw bad("sums and counts must be F32", tensor: name) }
            let cv = floats(g, c), sv = floats(g, s)
            guard !cv.isEmpty, sv.count % cv.count == 0 else {
                throw bad("\(sv.count) sums are not a whole number of rows for \(cv.count) counts", tensor: name)
            }
            // llama.cpp rounds the stored float counts to integers (std::lround).
            entries[name] = Entry(sums: sv, counts: cv.map { Int64(($0).rounded(.toNearestOrAwayFromZero)) })
        }
        let m = g.metadata
        let datasets: [String]
        if case .array(.string, let a)? = m[ImatrixKeys.datasets] { datasets = a.compactMap(\.stringValue) } else { datasets = [] }
        let missing = [ImatrixKeys.datasets, ImatrixKeys.chunkCount, ImatrixKeys.chunkSize].filter { m[$0] == nil }
        var out = ImportanceMatrix(entries: entries, datasets: datasets, chunkCount: m[ImatrixKeys.chunkCount]?.intValue ?? 0,
                                   chunkSize: m[ImatrixKeys.chunkSize]?.intValue ?? 0, format: .gguf, hasMetadata: missing.isEmpty)
        out.missingMetadata = missing
        return out
    }

    private static func floats(_ g: GGUFFile, _ t: GGUFTensorInfo) -> [Float] {
        let n = t.byteCount / 4
        let base = g.file.all.baseAddress! + g.dataOffset + t.offset
        return (0..<n).map { Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }

    /// The legacy layout: i32 entry count; per entry i32 name length, name, i32 call count, i32 value count, f32
    /// values; then optionally i32 chunk count, i32 length and the dataset name.
    static func readLegacy(_ file: MappedFile) throws -> ImportanceMatrix {
        let path = file.path
        var r = ByteReader(file.all, file: path)
        func bad(_ what: String) -> BillaError {
            BillaError(.invalidHeader, file: path, "not an importance matrix (neither GGUF nor llama-imatrix's .dat): \(what)",
                       remedy: "pass the .gguf or .dat file llama-imatrix or billa imatrix wrote")
        }
        guard r.remaining >= 4 else { throw bad("the file has \(r.remaining) bytes") }
        let n = Int(try r.readLE(Int32.self, "the entry count"))
        // Each entry takes at least 16 bytes: bound the count by the file before trusting it.
        guard n >= 1, n <= r.remaining / 16 else { throw bad("it declares \(n) entries in \(file.size) bytes") }
        var entries: [String: Entry] = [:]
        for i in 0..<n {
            let len = Int(try r.readLE(Int32.self, "the name length of entry \(i + 1)"))
            guard len >= 0, len <= r.remaining else { throw bad("entry \(i + 1) has a name of \(len) bytes") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: r.bytes[r.position..<(r.position + len)]), as: UTF8.self)
            r.position += len
            let ncall = try r.readLE(Int32.self, "the call count of \(name)")
            let nval = Int(try r.readLE(Int32.self, "the value count of \(name)"))
            guard nval >= 1, nval <= r.remaining / 4 else { throw bad("\(name) declares \(nval) values with \(r.remaining) bytes left") }
            var sums = [Float](repeating: 0, count: nval)
            for j in 0..<nval { sums[j] = Float(bitPattern: try r.readLE(UInt32.self, "a value of \(name)")) }
            guard entries[name] == nil else { throw bad("\(name) appears twice") }
            entries[name] = Entry(sums: sums, counts: [Int64(ncall)])
        }
        var chunkCount = 0
        var datasets: [String] = []
        if r.remaining >= 4 {
            chunkCount = Int(try r.readLE(Int32.self, "the chunk count"))
            if r.remaining >= 4 {
                let len = Int(try r.readLE(Int32.self, "the dataset name length"))
                if len > 0, len <= r.remaining {
                    datasets = [String(decoding: UnsafeRawBufferPointer(rebasing: r.bytes[r.position..<(r.position + len)]), as: UTF8.self)]
                }
            }
        }
        return ImportanceMatrix(entries: entries, datasets: datasets, chunkCount: chunkCount, chunkSize: 0, format: .dat,
                                hasMetadata: true)
    }
}
