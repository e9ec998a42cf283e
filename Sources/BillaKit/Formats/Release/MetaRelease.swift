import Foundation

/// Meta's original layout: params.json, consolidated.NN.pth model-parallel shards, tokenizer.model, checklist.chk.
enum MetaRelease {
    static func open(_ dir: String, names: [String]) throws -> Release {
        let params = try Release.readJSON(dir + "/params.json")
        let shardNames = names.filter { $0.hasPrefix("consolidated.") && $0.hasSuffix(".pth") }.sorted()
        // consolidated.00.pth ... must be numbered without gaps, or a shard is missing.
        for (i, name) in shardNames.enumerated() where name != String(format: "consolidated.%02d.pth", i) {
            throw BillaError(.notFound, file: dir + "/" + String(format: "consolidated.%02d.pth", i),
                             "shard \(i) of \(shardNames.count) is missing (found \(name))",
                             remedy: "download every consolidated.NN.pth of the release and check them with billa checksum --check checklist.chk")
        }
        let files = try shardNames.map { try FormatSniffer.openTensorFile(dir + "/" + $0) }
        var warnings = [String]()

        func shape(_ name: String, in file: TensorFile) -> [Int]? { file.tensor(named: name)?.shape }
        let first = files[0]
        // tok_embeddings is split along the embedding dim, so each shard has every row.
        let embeddingRows = shape("tok_embeddings.weight", in: first)?.first
        // output is split along rows: the vocabulary is their sum.
        let headRows = files.allSatisfy({ $0.tensor(named: "output.weight") != nil })
            ? files.reduce(0) { $0 + (shape("output.weight", in: $1)?.first ?? 0) } : nil
        let ffn = files.allSatisfy({ $0.tensor(named: "layers.0.feed_forward.w1.weight") != nil })
            ? files.reduce(0) { $0 + (shape("layers.0.feed_forward.w1.weight", in: $1)?.first ?? 0) } : nil

        guard let dim = params.int("dim"), let layers = params.int("n_layers"), let heads = params.int("n_heads") else {
            throw BillaError(.invalidHeader, file: dir + "/params.json", "dim, n_layers or n_heads is missing",
                             remedy: "restore params.json from the original release")
        }
        let declaredVocab = params.int("vocab_size").flatMap { $0 > 0 ? $0 : nil }
        var parameters = ModelParameters(
            dim: dim, nLayers: layers, nHeads: heads, nKVHeads: params.int("n_kv_heads") ?? heads,
            ffnDim: ffn, vocabSize: embeddingRows,
            normEps: params.double("norm_eps") ?? 1e-5, ropeTheta: params.double("rope_theta") ?? 10000,
            ropeScaling: try RopeScaling.fromMetaParams(params, file: dir + "/params.json"))
        parameters.apply(try FamilyConfig.fromMeta(params, file: dir + "/params.json"))
        parameters.readCarried(params)   // billa's extra keys (MetaLayout.params); Meta's own files have none

        let tokenizer = names.contains("tokenizer.model") ? dir + "/tokenizer.model" : nil
        let pieces = Release.tokenizerPieces(tokenizer, warnings: &warnings)
        let vocab = VocabCheck(embedding: embeddingRows, lmHead: headRows, config: declaredVocab, tokenizer: pieces)
        if let w = vocab.warning { warnings.append(w) }
        if tokenizer == nil { warnings.append("no tokenizer.model beside the shards") }
        return Release(path: dir, layout: .meta, files: files, parameters: parameters, tokenizerPath: tokenizer,
                       vocab: vocab, warnings: warnings)
    }
}
