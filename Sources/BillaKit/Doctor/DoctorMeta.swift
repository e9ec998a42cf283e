import Foundation

/// Meta's original layout: params.json, consolidated.NN.pth, checklist.chk (md5), tokenizer.model here or one level
/// up (the download's root, beside tokenizer_checklist.chk).
enum DoctorMeta {
    static func diagnose(_ dir: String, names: [String], _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        var r = DoctorReport(path: dir, kind: .metaOriginal, title: "Meta original checkpoint")
        let shards = names.filter(ModelDoctor.isMetaShard).sorted()
        guard names.contains("params.json") else {
            r.error("consolidated.NN.pth without params.json: the architecture is unknown")
            r.next.append("download params.json of this model into \(ModelDoctor.shellQuoted(dir))")
            return r
        }
        let params = try Release.readJSON(dir + "/params.json")
        guard let dim = params.int("dim"), let layers = params.int("n_layers"), let heads = params.int("n_heads") else {
            throw BillaError(.invalidHeader, file: dir + "/params.json", "dim, n_layers or n_heads is missing",
                             remedy: "restore params.json from the original release")
        }
        let kv = params.int("n_kv_heads") ?? heads
        let eps = params.double("norm_eps")
        let size = LlamaSize.match(dim: dim, layers: layers, kvHeads: kv, normEps: eps)
        r.fact("params.json", "dim \(dim), n_layers \(layers), n_heads \(heads), n_kv_heads \(kv), norm_eps \(eps.map { "\($0)" } ?? "absent")")
        r.fact("size", size.map { "\($0.name) (published shape)" } ?? "not a published LLaMA size")

        // How many model-parallel files the shapes say: shard 0 holds 1/n of wq's rows.
        var expected = size?.shards
        if let first = shards.first {
            let f = try FormatSniffer.openTensorFile(dir + "/" + first)
            if let wq = f.tensor(named: "layers.0.attention.wq.weight"), wq.shape.count == 2, wq.shape[0] > 0, dim % wq.shape[0] == 0 {
                let n = dim / wq.shape[0]
                if let s = size, s.shards != n {
                    r.warn("the shards are cut \(n) ways, but Meta published \(s.name) as \(s.shards): this copy was resharded, so Meta's checksums cannot match")
                }
                expected = n
            }
            r.fact("dtypes", ModelDoctor.dtypeMix(f.tensors.map(\.dtype)) + " (\(first))")
        }
        let present = Set(shards)
        let want = (0..<(expected ?? shards.count)).map { String(format: "consolidated.%02d.pth", $0) }
        let missing = want.filter { !present.contains($0) }
        let extra = shards.filter { !want.contains($0) }
        r.fact("shards", "\(shards.count - extra.count) of \(want.count)" + (missing.isEmpty ? " (complete)" : ""))
        if shards.isEmpty { r.error("no consolidated.NN.pth: the weights are not here") }
        if !missing.isEmpty { r.error("missing \(missing.joined(separator: ", ")): the shard set is incomplete") }
        if !extra.isEmpty { r.error("\(extra.joined(separator: ", ")) do not belong to a \(want.count)-file set") }
        if let s = size { r.title = "Meta original \(s.name)" }

        checklist(dir, names: names, into: &r, ctx)
        try tokenizer(dir, names: names, into: &r, ctx)

        let q = ModelDoctor.shellQuoted(dir)
        if !missing.isEmpty {
            r.next.append("download \(missing.joined(separator: " ")) into \(q), then: billa doctor \(q)")
            return r
        }
        if names.contains("checklist.chk"), r.hashed.isEmpty || !r.notHashed.isEmpty {
            r.next.append("billa checksum --check \(ModelDoctor.shellQuoted(dir + "/checklist.chk"))")
        }
        r.next.append("billa convert \(q) -o \(ModelDoctor.outputName(dir, "-hf")) --to hf")
        r.next.append("billa quantize \(q) -o \(ModelDoctor.outputName(dir, "-q4_k_m.gguf")) --type q4_k_m")
        return r
    }

    /// checklist.chk: its entries looked up in the published table (no hashing needed to know whose checklist it
    /// is), each listed file present, and hashed against it when small or asked.
    static func checklist(_ dir: String, names: [String], into r: inout DoctorReport, _ ctx: ModelDoctor.Context) {
        guard names.contains("checklist.chk") else {
            r.warn("no checklist.chk: the download cannot be checked against Meta's md5 list")
            return
        }
        let entries: [ManifestEntry]
        do { entries = try Manifest.parse(dir + "/checklist.chk") } catch {
            r.error("checklist.chk cannot be read: \(error)")
            return
        }
        var models = Set<String>()
        var knownCount = 0
        for e in entries {
            let hits = PublishedValues.lookup(e.digest, in: ctx.options.published).filter { $0.algorithm == e.algorithm }
            for k in hits { r.knownFiles.append(ModelDoctor.known(e.name, k, how: "listed in checklist.chk")) ; models.insert(k.model) }
            if !hits.isEmpty { knownCount += 1 }
        }
        let listed = Set(entries.map(\.name))
        r.fact("checklist.chk", "\(entries.count) entries, \(knownCount) of them published values"
               + (models.isEmpty ? "" : " (\(models.sorted().joined(separator: ", ")))"))
        if knownCount == entries.count, models.count == 1, let m = models.first {
            r.note("checklist.chk is Meta's published checklist of \(m)")
            r.title += ", checklist.chk is \(m)'s"
        } else if knownCount == 0 {
            r.note("checklist.chk's digests are not among the published values billa knows: it was written by someone else, or for a release billa has no table for")
        }
        for name in names where (ModelDoctor.isMetaShard(name) || name == "params.json") && !listed.contains(name) {
            r.warn("\(name) is not in checklist.chk")
        }
        for e in entries {
            let p = e.name.hasPrefix("/") ? e.name : dir + "/" + e.name
            guard FileManager.default.fileExists(atPath: p) else {
                r.error("\(e.name) is listed in checklist.chk but missing")
                continue
            }
            do {
                let got = try ModelDoctor.hashAndLookUp(p, [e.algorithm], expected: e.digest, into: &r, ctx)
                if let d = got[e.algorithm], d != e.digest {
                    r.error("\(e.name): \(e.algorithm.rawValue) \(d), but checklist.chk says \(e.digest): download it again")
                }
            } catch {
                r.error("\(e.name) cannot be hashed: \(error)")
            }
        }
    }

    /// tokenizer.model beside the shards, or in the download's root one level up (Meta's layout), hashed (it is small).
    static func tokenizer(_ dir: String, names: [String], into r: inout DoctorReport, _ ctx: ModelDoctor.Context) throws {
        let parent = (dir as NSString).deletingLastPathComponent
        if names.contains("tokenizer.model") {
            // checklist.chk may have hashed it with md5 already
            let done = Set(r.hashed.filter { $0.file == "tokenizer.model" }.map(\.algorithm))
            let todo = [HashAlgorithm.md5, .sha256].filter { !done.contains($0.rawValue) }
            if !todo.isEmpty { try ModelDoctor.hashAndLookUp(dir + "/tokenizer.model", todo, into: &r, ctx) }
        } else if FileManager.default.fileExists(atPath: parent + "/tokenizer.model") {
            r.note("tokenizer.model is one level up, as Meta's download lays it out; billa reads it beside the shards")
            r.next.append("cp \(ModelDoctor.shellQuoted(parent + "/tokenizer.model")) \(ModelDoctor.shellQuoted(dir + "/"))")
            var up = DoctorReport(path: parent, kind: .metaOriginal, title: "")
            try ModelDoctor.hashAndLookUp(parent + "/tokenizer.model", [.md5, .sha256], into: &up, ctx)
            r.hashed += up.hashed.map { var h = $0; h.file = "../" + h.file; return h }
            r.knownFiles += up.knownFiles.map { var k = $0; k.file = "../" + k.file; return k }
        } else {
            r.warn("no tokenizer.model here or one level up")
        }
    }
}
