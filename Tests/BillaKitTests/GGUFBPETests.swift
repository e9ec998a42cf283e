import Crypto
import Foundation
import Testing
@testable import BillaKit

/// GGUF "gpt2" vocabularies against llama.cpp 0.3.36's convert_hf_to_gguf.py and libllama
/// (Tests/Fixtures/gguf-bpe/, scripts/fixtures/make_gguf_bpe_fixtures.py).
enum GGUFBPEFixtures {
    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf-bpe/expected.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func source(_ name: String) throws -> [String: Any] {
        try #require((try expected()["sources"] as? [String: Any])?[name] as? [String: Any])
    }

    /// Every text of the tokenizer corpora and the BPE edge cases, in the generator's order.
    static func texts() throws -> [String] {
        var out = [String]()
        for name in ["tokenizer/corpus-en.jsonl", "tokenizer/corpus-zh.jsonl"] {
            for line in try String(contentsOfFile: Fixtures.path(name), encoding: .utf8).split(separator: "\n") where !line.isEmpty {
                let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                out.append(try #require(o["text"] as? String))
            }
        }
        let edge = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/edge-cases.json")))) as? [String: Any])
        for c in edge["cases"] as? [[String: Any]] ?? [] { out.append(try #require(c["text"] as? String)) }
        return out
    }

    static func ids(_ file: String) throws -> [[Int]] {
        var lines = try String(contentsOfFile: Fixtures.path(file), encoding: .utf8).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines.map { $0.split(separator: " ").map { Int($0)! } }
    }

    /// One element as GGUF stores it: u64 length + bytes for a string, little-endian for a number.
    static func elementBytes(_ v: GGUFValue) -> [UInt8] {
        switch v {
        case .string(let b): return withUnsafeBytes(of: UInt64(b.count).littleEndian) { Array($0) } + b
        case .i32(let x): return withUnsafeBytes(of: x.littleEndian) { Array($0) }
        case .u32(let x): return withUnsafeBytes(of: x.littleEndian) { Array($0) }
        case .f32(let x): return withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) }
        default: return []
        }
    }

    static let arrayTypes: [GGUFValueType: String] = [.string: "STRING", .i32: "INT32", .u32: "UINT32", .f32: "FLOAT32"]

    /// Compares billa's tokenizer.* keys with the converter's; returns a description of each difference (the first
    /// differing element for arrays: by index when the fixture holds the values, by block of `block` otherwise).
    static func differences(_ m: GGUFMetadata, _ want: [String: Any], block: Int) -> [String] {
        var out = [String]()
        let mine = m.keys.filter { $0.hasPrefix("tokenizer.") }
        for k in mine where want[k] == nil { out.append("\(k): billa writes it, the converter does not") }
        for (k, w) in want {
            guard let w = w as? [String: Any] else { continue }
            guard let got = m[k] else { out.append("\(k): missing (converter: \(w["value"] ?? w["count"] ?? ""))"); continue }
            if let etype = w["array"] as? String {
                guard case .array(let t, let values) = got else { out.append("\(k): not an array"); continue }
                if arrayTypes[t] != etype { out.append("\(k): element type \(t), converter \(etype)") }
                if values.count != w["count"] as? Int { out.append("\(k): \(values.count) elements, converter \(w["count"] ?? "")") }
                if let full = w["values"] as? [Any] {
                    for (i, v) in values.enumerated() where i < full.count {
                        let same = (full[i] as? String).map { v.stringValue == $0 } ?? ((full[i] as? Int).map { v.intValue == $0 } ?? false)
                        if !same { out.append("\(k)[\(i)] = \(v.stringValue ?? v.intValue.map(String.init) ?? "?"), converter \(full[i])"); break }
                    }
                    continue
                }
                let blocks = w["blocks"] as? [String] ?? []
                for (b, start) in stride(from: 0, to: values.count, by: block).enumerated() {
                    var h = SHA256()
                    for v in values[start..<min(start + block, values.count)] { h.update(data: elementBytes(v)) }
                    let hex = h.finalize().map { String(format: "%02x", $0) }.joined()
                    if b >= blocks.count || hex != blocks[b] {
                        out.append("\(k): elements \(start)..<\(min(start + block, values.count)) differ from the converter's (billa's first there: \(values[start].stringValue ?? values[start].intValue.map(String.init) ?? "?"))")
                        break
                    }
                }
            } else if let s = w["value"] as? String {
                if got.stringValue != s { out.append("\(k) = \(got.summary), converter \(s.prefix(80))") }
            } else if w["type"] as? String == "BOOL" {
                if got != .bool(w["value"] as? Bool ?? false) { out.append("\(k) = \(got.summary), converter \(w["value"] ?? "")") }
            } else if let i = w["value"] as? Int {
                if got.intValue != i || got.type != .u32 { out.append("\(k) = \(got.summary) (\(got.type)), converter \(i) (\(w["type"] ?? ""))") }
            }
        }
        return out
    }

    /// The first text whose ids differ, as "text N: first difference at position P (got vs want)".
    static func firstTextMismatch(_ tok: any TextTokenizer, _ texts: [String], _ want: [[Int]]) -> String? {
        for (i, t) in texts.enumerated() {
            let got = tok.encode(t)
            guard i < want.count else { return "no reference for text \(i)" }
            if got != want[i] {
                let p = zip(got, want[i]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want[i].count)
                return "text \(i) (\(t.prefix(30).debugDescription)): first difference at token \(p): \(p < got.count ? String(got[p]) : "end") vs \(p < want[i].count ? String(want[i][p]) : "end")"
            }
        }
        return nil
    }

    /// billa's GGUF of the Llama-3 HF fixture (`convert --to gguf` without --dtype) and the plan's notes, written
    /// once for the tests that read it.
    static let llama3GGUF: Result<(path: String, notes: [String]), Error> = Result {
        var options = GGUFExportOptions(recipe: .f16)
        options.sourceTypes = true
        let out = TinyGGUF.tempPath("bpe-llama3.gguf")
        let plan = try GGUFExport.plan(source: Fixtures.path("gguf-bpe/llama3"), options: options)
        try plan.write(to: out)
        return (out, plan.notes)
    }

    /// A GGUF holding only `metadata` (no tensors), for reading a vocabulary back.
    static func vocabularyOnly(_ metadata: GGUFMetadata, _ tag: String) throws -> String {
        let path = TinyGGUF.tempPath("bpe-\(tag).gguf")
        try GGUFWriter.write(metadata: metadata, tensors: [], to: path)
        return path
    }
}

@Suite("GGUF gpt2 vocabularies match llama.cpp's convert_hf_to_gguf and tokenizer")
struct GGUFBPETests {
    @Test("a Llama-3 HF directory converts to the converter's tokenizer keys and tensor bytes")
    func llama3Export() throws {
        let want = try GGUFBPEFixtures.source("llama3")
        let block = try #require(try GGUFBPEFixtures.expected()["block"] as? Int)
        let (out, notes) = try GGUFBPEFixtures.llama3GGUF.get()
        #expect(!notes.contains { $0.contains("GGUF does not record") || $0.contains("no GGUF key") }, "nothing is lost for Llama-3: \(notes)")
        let g = try GGUFReader.open(out)
        let diffs = GGUFBPEFixtures.differences(g.metadata, try #require(want["tokenizer"] as? [String: Any]), block: block)
        #expect(diffs.isEmpty, "tokenizer keys: \(diffs.joined(separator: "; "))")
        let wantKeys = (want["keys"] as? [String] ?? []).filter { $0.hasPrefix("tokenizer.") }
        #expect(g.metadata.keys.filter { $0.hasPrefix("tokenizer.") } == wantKeys, "tokenizer key order differs from the converter's")
        let tensors = try #require(want["tensors"] as? [String: [String: Any]])
        #expect(Set(g.tensors.map(\.name)) == Set(tensors.keys), "tensor names: \(g.tensors.map(\.name).sorted()) vs \(tensors.keys.sorted())")
        for t in g.tensors {
            guard let w = tensors[t.name] else { continue }
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            #expect(t.dims == w["dims"] as? [Int] && t.dtype.rawValue.uppercased() == w["type"] as? String,
                    "\(t.name) is \(t.dtype.rawValue) \(t.dims), converter \(w["type"] ?? "") \(w["dims"] ?? "")")
            #expect(sha256Hex(bytes) == w["sha256"] as? String, "tensor \(t.name)'s bytes differ from the converter's")
        }
    }

    @Test("Meta's tiktoken tokenizer.model gives the keys its convert_llama_weights_to_hf 3.1 conversion gets")
    func tiktokenVocabulary() throws {
        let want = try GGUFBPEFixtures.source("llama3")
        let block = try #require(try GGUFBPEFixtures.expected()["block"] as? Int)
        let path = Fixtures.path("bpe/llama3-tokenizer.model")
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let v = try GGUFBPEVocabulary.load(tiktoken: bytes, path: path, rows: 128256)
        var m = GGUFMetadata()
        v.write(into: &m)
        let diffs = GGUFBPEFixtures.differences(m, try #require(want["tokenizer"] as? [String: Any]), block: block)
        #expect(diffs.isEmpty, "tokenizer keys: \(diffs.joined(separator: "; "))")
        #expect(v.notes.contains { $0.contains("no chat template") }, "the unknowable chat template is stated")
    }

    @Test("a Meta Llama-3 original (tiktoken tokenizer.model) converts to the same tokenizer keys and tensors")
    func metaOriginalExport() throws {
        let want = try GGUFBPEFixtures.source("llama3")
        let block = try #require(try GGUFBPEFixtures.expected()["block"] as? Int)
        let tmp = try Fixtures.tempDir("bpe-meta")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // the HF fixture as a Meta original: consolidated.00.pth, params.json and Meta's own tokenizer.model (the
        // real file, in place of the one HF -> Meta writes)
        try Converter.plan(source: Fixtures.path("gguf-bpe/llama3"), destination: tmp + "/meta", options: ConvertOptions(target: .meta)).execute()
        try? FileManager.default.removeItem(atPath: tmp + "/meta/tokenizer.model")
        try FileManager.default.copyItem(atPath: Fixtures.path("bpe/llama3-tokenizer.model"), toPath: tmp + "/meta/tokenizer.model")
        var options = GGUFExportOptions(recipe: .f16)
        options.sourceTypes = true
        let plan = try GGUFExport.plan(source: tmp + "/meta", options: options)
        #expect(plan.notes.contains { $0.contains("no chat template") })
        try plan.write(to: tmp + "/meta.gguf")
        let g = try GGUFReader.open(tmp + "/meta.gguf")
        let diffs = GGUFBPEFixtures.differences(g.metadata, try #require(want["tokenizer"] as? [String: Any]), block: block)
        #expect(diffs.isEmpty, "tokenizer keys: \(diffs.joined(separator: "; "))")
        let tensors = try #require(want["tensors"] as? [String: [String: Any]])
        // A Meta original has no tying: its output.weight (HF -> Meta writes the embedding's copy) becomes the GGUF's
        // output.weight, which the converter writes from the untied lm_head convert_llama_weights_to_hf.py makes.
        for t in g.tensors {
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            let ref = t.name == "output.weight" ? "token_embd.weight" : t.name
            #expect(sha256Hex(bytes) == tensors[ref]?["sha256"] as? String, "tensor \(t.name)'s bytes differ from the converter's \(ref)")
        }
        #expect(Set(g.tensors.map(\.name)) == Set(tensors.keys).union(["output.weight"]))
    }

    @Test("a pack of the Llama-3 directory tokenizes with its tokenizer.json blob and converts to the same GGUF")
    func packSource() throws {
        let tmp = try Fixtures.tempDir("bpe-pack")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var raw = PackOptions()
        raw.raw = true
        try Packer.pack(Release.open(Fixtures.path("gguf-bpe/llama3")), options: raw, to: tmp + "/l3.billa")
        let tok = try #require(try ModelTokenizer.load(for: Release.open(tmp + "/l3.billa")))
        let dir = try ModelTokenizer.open(Fixtures.path("gguf-bpe/llama3"))
        let text = "Hello 世界 <|eot_id|> 3333"
        #expect(tok.kind == .tokenizerJSON && tok.encode(text) == dir.encode(text) && tok.eosID == 128001)
        var options = GGUFExportOptions(recipe: .f16)
        options.sourceTypes = true
        options.name = "llama3"
        try GGUFExport.plan(source: tmp + "/l3.billa", options: options).write(to: tmp + "/l3.gguf")
        let mine = try GGUFReader.open(tmp + "/l3.gguf"), ref = try GGUFReader.open(try GGUFBPEFixtures.llama3GGUF.get().path)
        #expect(mine.metadata.entries.filter { $0.key.hasPrefix("tokenizer.") } .map(\.key) == ref.metadata.entries.filter { $0.key.hasPrefix("tokenizer.") }.map(\.key))
        for (k, v) in ref.metadata.entries where k.hasPrefix("tokenizer.") { #expect(mine.metadata[k] == v, "\(k) differs from the directory's GGUF") }
    }

    @Test("the Qwen2 tokenizer's keys equal the converter's; its unlisted check-text hash is refused by name")
    func qwen2Vocabulary() throws {
        let want = try GGUFBPEFixtures.source("qwen2")
        let dir = Fixtures.path("gguf-bpe/qwen2")
        // the trimmed vocabulary is not Qwen2's real one: the converter's table does not know its hash
        let hash = try #require(want["chkhsh"] as? String)
        let tok = try BPETokenizer(tokenizerJSON: dir + "/tokenizer.json")
        #expect(GGUFBPEVocabulary.checkHash(tok.encodeWithSpecials(GGUFPreTokenizerTable.checkText)) == hash)
        #expect {
            _ = try GGUFBPEVocabulary.load(hf: .directory(dir), rows: 8064)
        } throws: { e in
            let m = (e as? BillaError)?.message ?? ""
            return m.contains("not recognized") && m.contains(hash)
        }
        // --tokenizer-pre must name a pre-tokenizer with the tokenizer's own regex
        #expect { _ = try GGUFBPEVocabulary.load(hf: .directory(dir), rows: 8064, pre: "llama-bpe") } throws: {
            ($0 as? BillaError)?.message.contains("Llama-3's regex, but this tokenizer uses Qwen2's") == true
        }
        #expect { _ = try GGUFBPEVocabulary.load(hf: .directory(dir), rows: 8064, pre: "gpt-2") } throws: {
            ($0 as? BillaError)?.message.contains("--tokenizer-pre gpt-2 is not") == true
        }
        // with the name the generator gave the converter, everything else is the converter's
        let v = try GGUFBPEVocabulary.load(hf: .directory(dir), rows: 8064, pre: "qwen2")
        #expect(v.notes.contains { $0.contains("--tokenizer-pre") && $0.contains(hash) })
        var m = GGUFMetadata()
        v.write(into: &m)
        let diffs = GGUFBPEFixtures.differences(m, try #require(want["tokenizer"] as? [String: Any]), block: 4096)
        #expect(diffs.isEmpty, "tokenizer keys: \(diffs.joined(separator: "; "))")
        let wantKeys = (want["keys"] as? [String] ?? []).filter { $0.hasPrefix("tokenizer.") }
        #expect(m.keys == wantKeys, "key order \(m.keys) vs the converter's \(wantKeys)")
        #expect(v.paddingCount == 8064 - 8007)
        // what the GGUF cannot carry is stated
        #expect(v.notes.contains { $0.contains("NFC normalizer") } && v.notes.contains { $0.contains("<mask>") && $0.contains("lstrip") })
    }

    @Test("special ids, add flags and chat templates are what gguf-py's SpecialVocab writes", arguments: [
        "llama31-instruct", "no-tokenizer-config", "config-flags", "trailing-eos", "roberta", "dict-tokens", "chat-jinja", "negative-pad"])
    func specialVocab(_ name: String) throws {
        let all = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf-bpe/special/expected.json")))) as? [String: Any])
        let want = try #require(all[name] as? [String: Any])
        let dir = Fixtures.path("gguf-bpe/special/\(name)")
        let root = try BPETokenizer.parseTokenizerJSON(Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer.json")), path: dir)
        if let error = want["error"] as? String {
            #expect(throws: BillaError.self, "SpecialVocab refuses it: \(error)") { _ = try GGUFBPESpecialVocab.load(.directory(dir), tokenizerJSON: root) }
            return
        }
        let v = try GGUFBPESpecialVocab.load(.directory(dir), tokenizerJSON: root)
        var m = GGUFMetadata()
        v.write(into: &m)
        let kv = try #require(want["kv"] as? [[Any]])
        // named templates come in the order of a directory listing (gguf-py globs); everything else in its order
        func named(_ k: String) -> Bool { k.hasPrefix("tokenizer.chat_template.") }
        let wantKeys = kv.compactMap { $0[0] as? String }
        #expect(m.keys.filter { !named($0) } == wantKeys.filter { !named($0) }, "\(name): keys \(m.keys), SpecialVocab \(wantKeys)")
        #expect(Set(m.keys.filter(named)) == Set(wantKeys.filter(named)))
        for e in kv {
            guard let k = e[0] as? String, let type = e[1] as? String, let got = m[k] else { continue }
            switch type {
            case "UINT32": #expect(got.type == .u32 && got.intValue == (e[2] as? NSNumber)?.intValue, "\(name): \(k) = \(got.summary), SpecialVocab \(e[2])")
            case "BOOL": #expect(got == .bool((e[2] as? Bool) ?? false), "\(name): \(k) = \(got.summary), SpecialVocab \(e[2])")
            case "STRING": #expect(got.stringValue == e[2] as? String, "\(name): \(k)")
            case "ARRAY":
                guard case .array(_, let a) = got else { Issue.record("\(name): \(k) is not an array"); continue }
                #expect(a.map { $0.stringValue ?? "" } == e[2] as? [String], "\(name): \(k)")
            default: Issue.record("\(name): \(k) has type \(type)")
            }
        }
    }

    @Test("a gpt2 GGUF reads back as llama.cpp tokenizes it, on every corpus text and edge case", arguments: ["llama3", "qwen2"])
    func readBack(_ name: String) throws {
        let path: String
        if name == "llama3" {
            path = try GGUFBPEFixtures.llama3GGUF.get().path
        } else {
            let v = try GGUFBPEVocabulary.load(hf: .directory(Fixtures.path("gguf-bpe/qwen2")), rows: 8064, pre: "qwen2")
            var m = GGUFMetadata()
            m[GGUFKeys.architecture] = .text("qwen2")
            v.write(into: &m)
            path = try GGUFBPEFixtures.vocabularyOnly(m, name)
        }
        defer { if name != "llama3" { try? FileManager.default.removeItem(atPath: path) } }
        let tok = try ModelTokenizer.open(path)
        #expect(tok.kind == .gguf)
        let texts = try GGUFBPEFixtures.texts()
        let llama = try GGUFBPEFixtures.ids("gguf-bpe/ids-\(name)-llama.txt")
        let mismatch = GGUFBPEFixtures.firstTextMismatch(tok, texts, llama)
        #expect(mismatch == nil, "llama.cpp: \(mismatch ?? "")")
        // where llama.cpp and tokenizers agree, billa's GGUF reading agrees with both; the generator lists the others
        let differ = Set(((try GGUFBPEFixtures.source(name))["llama_vs_tokenizers"] as? [[String: Any]] ?? []).compactMap { $0["index"] as? Int })
        let hf = try GGUFBPEFixtures.ids("bpe/ids-\(name).txt")
        for i in texts.indices where !differ.contains(i) {
            #expect(hf[i] == llama[i], "text \(i): the generator says llama.cpp and tokenizers agree")
        }
        if name == "llama3" {
            #expect(tok.bosID == 128000 && tok.eosID == 128001)
            #expect(try tok.decode(tok.encode("Hello 世界 🤗")) == "Hello 世界 🤗")
        } else {
            #expect(tok.bosID == nil, "add_bos_token false: no bos is added")
        }
    }

    @Test("an unknown tokenizer.ggml.pre or tokenizer model is refused by name")
    func refusals() throws {
        let dir = Fixtures.path("gguf-bpe/qwen2")
        let v = try GGUFBPEVocabulary.load(hf: .directory(dir), rows: 8064, pre: "qwen2")
        var m = GGUFMetadata()
        v.write(into: &m)
        m[GGUFBPEKeys.pre] = .text("deepseek-llm")
        let a = try GGUFBPEFixtures.vocabularyOnly(m, "pre")
        defer { try? FileManager.default.removeItem(atPath: a) }
        #expect { _ = try ModelTokenizer.open(a) } throws: { ($0 as? BillaError)?.message.contains("'deepseek-llm'") == true }
        m[GGUFKeys.tokenizerModel] = .text("t5")
        let b = try GGUFBPEFixtures.vocabularyOnly(m, "model")
        defer { try? FileManager.default.removeItem(atPath: b) }
        #expect { _ = try ModelTokenizer.open(b) } throws: { ($0 as? BillaError)?.message.contains("'t5'") == true }
    }

    @Test("billa generate on the Llama-3 HF directory gives llama.cpp's greedy tokens on the GGUF")
    func greedy() throws {
        let want = try #require((try GGUFBPEFixtures.source("llama3"))["greedy"] as? [[String: Any]])
        let model = try Verifier.Loaded(Fixtures.path("gguf-bpe/llama3"))
        for g in want {
            let prompt = try #require(g["prompt"] as? String)
            #expect(try model.tokenize(prompt) == g["prompt_ids"] as? [Int], "prompt ids of \(prompt.debugDescription)")
            let tokens = try #require(g["tokens"] as? [Int])
            let got = try model.generate(prompt, count: tokens.count, sampler: Sampler()) { _ in }
            #expect(got == tokens, "\(prompt.debugDescription): billa \(got), llama.cpp \(tokens)")
            // llama-simple prints each token's piece (bos and special tokens included), the prompt's and then the
            // generated ones, and a newline
            let stdout = try #require(g["llama_simple_stdout"] as? String)
            let ids = try #require(g["prompt_ids"] as? [Int])
            let shown = try #require(model.tokenizer).decode(ids + got) + "\n"
            #expect(stdout == shown, "llama-simple printed \(stdout.debugDescription), billa's ids decode to \(shown.debugDescription)")
        }
    }

    @Test("billa generate on billa's GGUF (its gpt2 vocabulary read back) gives the same tokens")
    func greedyOnGGUF() throws {
        let want = try #require((try GGUFBPEFixtures.source("llama3"))["greedy"] as? [[String: Any]])
        let model = try Verifier.Loaded(try GGUFBPEFixtures.llama3GGUF.get().path)
        #expect(model.tokenizer?.kind == .gguf)
        for g in want {
            let prompt = try #require(g["prompt"] as? String)
            #expect(try model.tokenize(prompt) == g["prompt_ids"] as? [Int], "prompt ids of \(prompt.debugDescription)")
            let tokens = try #require(g["tokens"] as? [Int])
            #expect(try model.generate(prompt, count: tokens.count, sampler: Sampler()) { _ in } == tokens, "\(prompt.debugDescription)")
        }
    }
}
