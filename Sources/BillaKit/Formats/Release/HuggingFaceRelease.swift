import Foundation

/// A Hugging Face directory: config.json, weights as one file or shards named by an index's weight_map.
enum HuggingFaceRelease {
    /// Weight files in the order transformers looks for them.
    static let singleFiles = ["model.safetensors", "pytorch_model.bin"]
    static let indexFiles = ["model.safetensors.index.json", "pytorch_model.bin.index.json"]

    static func open(_ dir: String, names: [String]) throws -> Release {
        let config = try Release.readJSON(dir + "/config.json")
        let family = try FamilyConfig.fromHF(config, file: dir + "/config.json")
        let rope = try RopeScaling.fromHFConfig(config, file: dir + "/config.json")
        var warnings = [String]()
        let files: [TensorFile]
        if let indexName = indexFiles.first(where: names.contains) {
            files = try openIndexed(dir, indexName: indexName, warnings: &warnings)
        } else if let single = singleFiles.first(where: names.contains) {
            files = [try FormatSniffer.openTensorFile(dir + "/" + single)]
        } else {
            throw BillaError(.notFound, file: dir, "config.json is here but no weights (model.safetensors, pytorch_model.bin or an index)",
                             remedy: "download the weight files of the release into this directory")
        }

        func tensor(_ name: String) -> Tensor? {
            for f in files { if let t = f.tensor(named: name) { return t } }
            return nil
        }
        let embeddingRows = tensor("model.embed_tokens.weight")?.shape.first
        let tied = (config["tie_word_embeddings"] as? Bool) ?? false
        let headRows = tensor("lm_head.weight")?.shape.first ?? (tied ? embeddingRows : nil)

        guard let dim = config.int("hidden_size"), let layers = config.int("num_hidden_layers"),
              let heads = config.int("num_attention_heads") else {
            throw BillaError(.invalidHeader, file: dir + "/config.json", "hidden_size, num_hidden_layers or num_attention_heads is missing",
                             remedy: "restore config.json from the release")
        }
        var parameters = ModelParameters(
            dim: dim, nLayers: layers, nHeads: heads, nKVHeads: config.int("num_key_value_heads") ?? heads,
            ffnDim: config.int("intermediate_size") ?? tensor("model.layers.0.mlp.gate_proj.weight")?.shape.first,
            vocabSize: embeddingRows,
            normEps: config.double("rms_norm_eps") ?? 1e-6,
            // transformers >= 5 nests it under rope_parameters; earlier versions put it at the top level.
            ropeTheta: rope.theta, ropeScaling: rope.scaling)
        parameters.apply(family)
        parameters.readCarried(config)

        let tokenizer = ["tokenizer.model", "tokenizer.json"].first(where: names.contains).map { dir + "/" + $0 }
        // Encoding uses tokenizer.model when both are there; the rows a model must have are transformers' count.
        var pieces: Int? = nil
        do { pieces = try TokenizerPieceCount.transformersLength(directory: dir) } catch {
            warnings.append("cannot read the tokenizer: \(error)")
        }
        let vocab = VocabCheck(embedding: embeddingRows, lmHead: headRows, config: config.int("vocab_size"), tokenizer: pieces)
        if let w = vocab.warning { warnings.append(w) }
        if tokenizer == nil { warnings.append("no tokenizer.model or tokenizer.json in the directory") }
        return Release(path: dir, layout: .huggingFace, files: files, parameters: parameters, tokenizerPath: tokenizer,
                       vocab: vocab, warnings: warnings)
    }

    /// Opens every shard the index names and checks the map against what the shards hold.
    static func openIndexed(_ dir: String, indexName: String, warnings: inout [String]) throws -> [TensorFile] {
        let indexPath = dir + "/" + indexName
        let index = try Release.readJSON(indexPath)
        guard let map = index["weight_map"] as? [String: String] else {
            throw BillaError(.invalidHeader, file: indexPath, "no weight_map object", remedy: "download the index json again")
        }
        var order = [String]()
        for shard in Set(map.values) where !order.contains(shard) { order.append(shard) }
        order.sort()
        var files = [TensorFile]()
        for shard in order {
            guard !shard.contains("/"), !shard.hasPrefix(".") else {
                throw BillaError(.invalidHeader, file: indexPath, "weight_map names '\(shard)', outside the directory",
                                 remedy: "the index must name files beside it")
            }
            let p = dir + "/" + shard
            guard FileManager.default.fileExists(atPath: p) else {
                throw BillaError(.notFound, file: p, "shard named by \(indexName) is missing",
                                 remedy: "download \(shard) into \(dir)")
            }
            files.append(try FormatSniffer.openTensorFile(p))
        }
        for (name, shard) in map.sorted(by: { $0.key < $1.key }) {
            guard let f = files.first(where: { $0.path.hasSuffix("/" + shard) }), f.tensor(named: name) != nil else {
                throw BillaError(.notFound, file: dir + "/" + shard, tensor: name, "the index puts this tensor here but the shard does not hold it",
                                 remedy: "the shard is from another release or the download is incomplete; download it again")
            }
        }
        let extra = files.flatMap { f in f.tensors.filter { map[$0.name] == nil }.map(\.name) }
        if !extra.isEmpty {
            warnings.append("\(extra.count) tensor(s) are in the shards but not in \(indexName) (e.g. \(extra[0])); transformers will ignore them")
        }
        return files
    }
}
