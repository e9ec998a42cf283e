import Foundation

extension ImportanceMatrix {
    /// llama-imatrix's --in-file: matrices added up in the order given, as raw sums and token counts. A legacy
    /// file's means × calls become sums × `chunkSize` and calls × `chunkSize` tokens (its load_imatrix, with the
    /// current -c as the chunk size); GGUF sums and counts add as they are (a single count broadcast over stacked
    /// matrices). Datasets are kept in order; the chunk count is the largest token count over `chunkSize`.
    public static func combine(_ files: [(path: String, matrix: ImportanceMatrix)], chunkSize: Int) throws -> ImportanceMatrix {
        var out = ImportanceMatrix(entries: [:], datasets: [], chunkCount: 0, chunkSize: chunkSize)
        for (path, m) in files { try out.add(m, from: path) }
        out.chunkCount = out.entries.values.flatMap(\.counts).max().map { Int($0) / Swift.max(1, chunkSize) } ?? 0
        return out
    }

    /// Adds `m`'s statistics into these raw sums (as load_imatrix does, entry by entry, in float).
    mutating func add(_ m: ImportanceMatrix, from path: String) throws {
        let chunk = Float(chunkSize)
        for (name, entry) in m.entries {
            var e = entries[name] ?? Entry(sums: [], counts: [])
            if e.sums.isEmpty { e.sums = [Float](repeating: 0, count: entry.sums.count) }
            guard e.sums.count == entry.sums.count else {
                throw BillaError(.shapeMismatch, file: path, tensor: name,
                                 "\(entry.sums.count) sums where the matrices before it hold \(e.sums.count)",
                                 remedy: "combine importance matrices of the same model only")
            }
            switch m.format {
            case .dat:
                if e.counts.isEmpty { e.counts = [0] }
                for j in e.sums.indices { e.sums[j] += entry.sums[j] * chunk }
                let tokens = (entry.counts.first ?? 0) * Int64(chunkSize)
                for j in e.counts.indices { e.counts[j] += tokens }
            case .gguf:
                if e.counts.isEmpty { e.counts = [Int64](repeating: 0, count: entry.counts.count) }
                else if e.counts.count == 1, entry.counts.count > 1 { e.counts = [Int64](repeating: e.counts[0], count: entry.counts.count) }
                guard e.counts.count == entry.counts.count else {
                    throw BillaError(.shapeMismatch, file: path, tensor: name,
                                     "\(entry.counts.count) stacked matrices where the matrices before it hold \(e.counts.count)",
                                     remedy: "combine importance matrices of the same model only")
                }
                for j in e.sums.indices { e.sums[j] += entry.sums[j] }
                for j in e.counts.indices { e.counts[j] += entry.counts[j] }
            }
            entries[name] = e
        }
        datasets += m.datasets
    }
}
