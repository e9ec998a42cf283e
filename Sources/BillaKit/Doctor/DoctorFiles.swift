import Foundation

/// Single files: GGUF (one or a gguf-split set), billa packs, and a bare tensor file.
enum DoctorFiles {
    static func gguf(_ path: String, _ mapped: MappedFile, _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        let first = try GGUFReader.open(mapped)
        let q = ModelDoctor.shellQuoted(path)
        let count = first.metadata[GGUFSplit.countKey]?.intValue ?? 1
        var r = DoctorReport(path: path, kind: count > 1 ? .ggufSplit : .gguf, title: count > 1 ? "GGUF, a \(count)-file gguf-split set" : "GGUF, one file")
        var files = [first]
        do { files = try GGUFSplit.open(first) } catch let e as BillaError {
            r.error(e.message + " (\(e.remedy))")
        }
        if count > 1 {
            r.fact("split", "file \((first.metadata[GGUFSplit.noKey]?.intValue ?? 0) + 1) of \(count); \(files.count) of \(count) present")
        }
        r.fact("gguf", "version \(first.version), architecture \(first.architecture ?? "absent"), name \(first.metadata["general.name"]?.stringValue ?? "absent")")
        let tensors = files.flatMap(\.tensors)
        r.fact("tensors", "\(tensors.count)")
        r.fact("types", ModelDoctor.dtypeMix(tensors.map(\.dtype)))
        if let e = tensors.first(where: { $0.name == "token_embd.weight" }), e.shape.count == 2 {
            let size = LlamaSize.match(dim: e.shape[1], layers: first.metadata["llama.block_count"]?.intValue, kvHeads: first.metadata["llama.attention.head_count_kv"]?.intValue, normEps: nil)
            r.fact("shape", "hidden \(e.shape[1]), vocabulary \(e.shape[0])" + (size.map { ": \($0.name) shape" } ?? ""))
        }
        for f in files { try ModelDoctor.hashAndLookUp(f.path, [.sha256], into: &r, ctx) }
        guard r.ok else { return r }
        r.next.append("billa verify \(q)")
        r.next.append("billa generate \(q) --prompt $'Human: 你好\\nAssistant: ' -n 32")
        if tensors.allSatisfy({ !$0.dtype.isQuantized }) {
            r.next.append("billa quantize \(q) -o \(ModelDoctor.outputName(count > 1 ? String(path.dropLast(String(format: "-%05d-of-%05d.gguf", 1, count).count)) : path, "-q4_k_m.gguf")) --type q4_k_m")
        }
        return r
    }

    static func pack(_ path: String, _ mapped: MappedFile, _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        let first = try PackReader.open(mapped)
        let q = ModelDoctor.shellQuoted(path)
        var r = DoctorReport(path: path, kind: .pack, title: first.shardCount > 1 ? "billa pack, a \(first.shardCount)-file set" : "billa pack")
        var shards = [first]
        if first.shardCount > 1 {
            do { shards = try PackSet.open(path) } catch let e as BillaError { r.error(e.message + " (\(e.remedy))") }
            r.fact("set", "file \(first.shardIndex + 1) of \(first.shardCount); \(shards.count) present")
        }
        let tensors = shards.flatMap(\.tensors)
        r.fact("pack", "version \(first.version.major).\(first.version.minor), \(tensors.count) tensors, blobs: \(first.blobs.isEmpty ? "none" : first.blobs.map(\.name).joined(separator: ", "))")
        r.fact("dtypes", ModelDoctor.dtypeMix(tensors.map(\.dtype)))
        let src = first.metadata.source
        r.fact("source", "\(src.layout) \(src.name), \(src.files.count) file(s)")
        guard r.ok else { return r }
        r.next.append("billa verify --checksums \(q)")
        let quantized = tensors.contains { $0.dtype.isQuantized }
        if first.shardCount > 1 {
            r.next.append("billa convert \(q) -o \(ModelDoctor.outputName(path, "-hf")) --to hf")
        } else if quantized {
            r.next.append("billa unpack \(q) -o \(ModelDoctor.outputName(path, ".gguf")) --to gguf")
        } else {
            r.next.append("billa unpack \(q) -o \(ModelDoctor.outputName(path, "-hf")) --to hf")
        }
        return r
    }

    static func tensorFile(_ path: String, _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        let f = try FormatSniffer.openTensorFile(path)
        let name = (path as NSString).lastPathComponent
        var r = DoctorReport(path: path, kind: .tensorFile, title: "a single \(f.format.rawValue) tensor file")
        r.fact("tensors", "\(f.tensors.count); dtypes \(ModelDoctor.dtypeMix(f.tensors.map(\.dtype)))")
        let meta = f.tensor(named: "tok_embeddings.weight") != nil || f.tensors.contains { $0.name.hasPrefix("layers.") }
        let hf = f.tensors.contains { $0.name.hasPrefix("model.") || $0.name == "lm_head.weight" }
        r.fact("names", meta ? "Meta's (tok_embeddings, layers.N.attention...)" : hf ? "Hugging Face's (model.layers.N...)" : "neither Meta's nor Hugging Face's LLaMA names")
        try ModelDoctor.hashAndLookUp(path, [.sha256], into: &r, ctx)
        if let k = r.knownFiles.first { r.title += ": \(k.official)" }
        let dir = (path as NSString).deletingLastPathComponent
        if meta, name.hasPrefix("consolidated.") {
            r.note("one shard of a Meta checkpoint: billa reads the directory (params.json + every consolidated.NN.pth)")
            r.next.append("billa doctor \(ModelDoctor.shellQuoted(dir.isEmpty ? "." : dir))")
        } else if hf, FileManager.default.fileExists(atPath: (dir.isEmpty ? "." : dir) + "/config.json") {
            r.note("one file of a Hugging Face directory")
            r.next.append("billa doctor \(ModelDoctor.shellQuoted(dir.isEmpty ? "." : dir))")
        }
        r.next.append("billa inspect \(ModelDoctor.shellQuoted(path))")
        return r
    }
}
