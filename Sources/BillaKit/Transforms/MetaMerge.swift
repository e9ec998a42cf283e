/// The whole tensors of a Meta release, merged from its model-parallel shards by `MetaShardRules` as views: nothing
/// is read until a writer asks for rows.
public enum MetaMerge {
    /// `skipping` names tensors that `TensorAccounting` decided not to convert (buffers, allowed drops).
    public static func merged(_ release: Release, skipping: Set<String> = []) throws -> [(name: String, source: RowSource)] {
        guard release.layout == .meta, let first = release.files.first else {
            throw BillaError(.invalidArgument, file: release.path, "not a Meta release (params.json + consolidated.NN.pth)",
                             remedy: "pass the directory holding params.json and the consolidated.NN.pth files")
        }
        let names = first.tensors.map(\.name)
        for f in release.files.dropFirst() where Set(f.tensors.map(\.name)) != Set(names) {
            let missing = Set(names).symmetricDifference(f.tensors.map(\.name)).sorted().first ?? ""
            throw BillaError(.shapeMismatch, file: f.path, tensor: missing,
                             "this shard does not hold the same tensors as \(first.path)",
                             remedy: "all consolidated.NN.pth files must come from one release; download the odd one again")
        }
        var out = [(String, RowSource)]()
        for name in names where !skipping.contains(name) {
            let pieces = try release.files.map { f -> RowSource in
                guard let t = f.tensor(named: name) else {
                    throw BillaError(.notFound, file: f.path, tensor: name, "missing from this shard", remedy: "download the shard again")
                }
                return RowSource(t)
            }
            guard let rule = MetaShardRules.rule(for: name) else {
                throw BillaError(.unsupported, file: first.path, tensor: name, "billa does not know how Meta's model parallelism splits this tensor",
                                 remedy: "only LLaMA-architecture tensors can be merged; remove extra tensors from the checkpoint")
            }
            do {
                switch rule {
                case .replicated: out.append((name, pieces[0]))
                case .concat(axis: 0): out.append((name, try RowSource.concatRows(pieces)))
                case .concat(axis: 1): out.append((name, try RowSource.concatColumns(pieces)))
                case .concat: throw BillaError(.unsupported, tensor: name, "split along an axis above 1", remedy: "")
                }
            } catch let e as BillaError {
                throw e.forTensor(name).inFile(release.path)
            }
        }
        return out
    }

    /// Piece `k` of `n` of a whole tensor under Meta's split rules.
    public static func piece(_ name: String, _ whole: RowSource, _ k: Int, of n: Int, file: String) throws -> RowSource {
        guard let rule = MetaShardRules.rule(for: name) else {
            throw BillaError(.unsupported, file: file, tensor: name, "billa does not know how Meta's model parallelism splits this tensor",
                             remedy: "only LLaMA-architecture tensors can be split")
        }
        if n == 1 { return whole }   // keeps the source's zero-copy rows
        switch rule {
        case .replicated: return whole
        case .concat(let axis):
            let extent = axis == 0 ? whole.rows : (whole.shape.count == 2 ? whole.shape[1] : -1)
            guard extent >= 0, extent % n == 0 else {
                throw BillaError(.shapeMismatch, file: file, tensor: name,
                                 "\(Shape.describe(whole.shape)) does not split into \(n) equal pieces along dimension \(axis)",
                                 remedy: "choose a shard count that divides it (Meta used 1 for 7B, 2 for 13B, 4 for 33B, 8 for 65B/70B)")
            }
            let size = extent / n
            return axis == 0 ? whole.rowSlice(k * size, size) : whole.columnSlice(k * size, size)
        }
    }
}
