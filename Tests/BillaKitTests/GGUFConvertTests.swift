import Foundation
import Testing
@testable import BillaKit

/// `convert --to gguf` against llama.cpp's convert_hf_to_gguf.py: Tests/Fixtures/gguf/expected.json holds what
/// that converter wrote for each source (read back with gguf-py), and the sha256 of billa's file that gguf-py
/// parsed and found equal (scripts/fixtures/make_gguf_fixtures.py).
enum GGUFConvertFixtures {
    struct Expected: Decodable { let sources: [String: Source] }
    struct Source: Decodable {
        let metadata: [String: JSONScalar]
        let vocab: Vocab
        let tensors: [String: Tensor]
        let billa_sha256: String
    }
    struct Vocab: Decodable { let tokens: [String]; let scores: [Float]; let token_type: [Int32] }
    struct Tensor: Decodable { let dims: [Int]; let type: String; let sha256: String }
    enum JSONScalar: Decodable, Equatable {
        case int(Int), bool(Bool), text(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let i = try? c.decode(Int.self) { self = .int(i) } else {
                self = .text(try c.decode(String.self))
            }
        }
    }

    static func load() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf/expected.json"))))
    }

    static func sourcePath(_ name: String) -> String { Fixtures.path(name == "tiny-hf-st" ? name : "gguf/" + name) }

    /// Where two lists first differ, or nil.
    static func firstMismatch<T: Equatable>(_ a: [T], _ b: [T]) -> String? {
        if let i = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            return "first difference at id \(i): \(a[i]) vs \(b[i])"
        }
        return a.count == b.count ? nil : "lengths differ: \(a.count) vs \(b.count)"
    }
}

@Suite("convert --to gguf matches llama.cpp's convert_hf_to_gguf")
struct GGUFConvertTests {
    @Test("vocabulary with added tokens, special ids, context length and every tensor equal the converter's; the file is the one gguf-py parsed",
          arguments: ["alpaca", "chat", "tiny-hf-st"])
    func matchesConverter(_ name: String) throws {
        let want = try #require(try GGUFConvertFixtures.load().sources[name])
        let out = TinyGGUF.tempPath("convert-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try GGUFExport.plan(source: GGUFConvertFixtures.sourcePath(name), options: GGUFExportOptions(recipe: .f16)).write(to: out)
        let g = try GGUFReader.open(out)

        for (key, value) in want.metadata {
            let got = g.metadata[key]
            switch value {
            case .int(let i): #expect(got?.intValue == i, "\(name): \(key) = \(got.map { "\($0)" } ?? "absent"), converter: \(i)")
            case .bool(let b): #expect(got == .bool(b), "\(name): \(key) = \(got.map { "\($0)" } ?? "absent"), converter: \(b)")
            case .text(let s): #expect(got?.stringValue == s, "\(name): \(key), converter: \(s)")
            }
        }
        guard case .array(_, let toks)? = g.metadata["tokenizer.ggml.tokens"], case .array(_, let scores)? = g.metadata["tokenizer.ggml.scores"],
              case .array(_, let types)? = g.metadata["tokenizer.ggml.token_type"] else {
            Issue.record("\(name): no vocabulary arrays"); return
        }
        let m1 = GGUFConvertFixtures.firstMismatch(toks.map { $0.stringValue ?? "" }, want.vocab.tokens)
        #expect(m1 == nil, "\(name) tokens: \(m1 ?? "")")
        let m2 = GGUFConvertFixtures.firstMismatch(scores.map { $0.doubleValue.map(Float.init) ?? .nan }, want.vocab.scores)
        #expect(m2 == nil, "\(name) scores: \(m2 ?? "")")
        let m3 = GGUFConvertFixtures.firstMismatch(types.map { Int32($0.intValue ?? -1) }, want.vocab.token_type)
        #expect(m3 == nil, "\(name) token types: \(m3 ?? "")")

        #expect(Set(g.tensors.map(\.name)) == Set(want.tensors.keys), "\(name): tensor names differ from the converter's")
        for t in g.tensors {
            guard let w = want.tensors[t.name] else { continue }
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            #expect(t.dims == w.dims && t.dtype.rawValue.uppercased() == w.type, "\(name): \(t.name) is \(t.dtype.rawValue) \(t.dims), converter: \(w.type) \(w.dims)")
            #expect(sha256Hex(bytes) == w.sha256, "\(name): tensor \(t.name) data (file bytes \(g.dataOffset + t.offset)..<\(g.dataOffset + t.offset + t.byteCount)) differs from the converter's")
        }
        // Metadata and tensors agree above, so a difference here is in layout: key order, names, alignment.
        #expect(try sha256Hex(file: out) == want.billa_sha256,
                "\(name): the file is not the one gguf-py parsed; regenerate with make_gguf_fixtures.py --billa if the change is intended")
    }

    @Test("added tokens and special ids are read as the converter reads them, without tokenizer.json or with it")
    func addedTokenRules() throws {
        let alpaca = try HFAddedVocabulary.load(directory: Fixtures.path("gguf/alpaca"), rows: 513)
        // added_tokens.json: [PAD] at 512 (user-defined); <extra> at 513 is outside 513 rows and skipped with a note.
        #expect(alpaca.tokens.map(\.text) == ["[PAD]"] && alpaca.tokens.first?.type == .userDefined)
        #expect(alpaca.notes.contains { $0.contains("<extra>") })
        // No tokenizer.json: tokenizer_config's pad_token is not looked up; config.json's pad_token_id 0 is.
        #expect(alpaca.specialIDs["pad"] == 0)
        let chat = try HFAddedVocabulary.load(directory: Fixtures.path("gguf/chat"), rows: 520)
        #expect(chat.specialIDs["pad"] == 512 && chat.specialIDs["unk"] == 0)
        #expect(chat.tokens.first { $0.id == 515 }?.text == " 你好")        // '▁' pre-normalized for user-defined tokens
        #expect(chat.tokens.first { $0.id == 517 }?.type == .control)       // <mask> looks special though not marked
        #expect(HFAddedVocabulary.looksSpecial("<|im_end|>") && !HFAddedVocabulary.looksSpecial("<im_end>"))
    }

    @Test("the context length and name options reach the GGUF; Meta sources note the 2048 default")
    func contextLengthAndName() throws {
        var o = GGUFExportOptions(recipe: .f32)
        let meta = try GGUFExport.plan(source: Fixtures.path("tiny-meta"), options: o)
        #expect(meta.metadata["llama.context_length"] == .u32(2048))
        #expect(meta.notes.contains { $0.contains("--max-position-embeddings") })
        o.contextLength = 4096
        o.name = "LLaMA 2 tiny"
        for src in ["tiny-meta", "tiny-hf-st"] {
            let p = try GGUFExport.plan(source: Fixtures.path(src), options: o)
            #expect(p.metadata["llama.context_length"] == .u32(4096), "\(src)")
            #expect(p.metadata["general.name"]?.stringValue == "LLaMA 2 tiny", "\(src)")
            #expect(!p.notes.contains { $0.contains("--max-position-embeddings") })
        }
        // A GGUF source keeps its own values unless given, in place (key order unchanged).
        let src = try TinyGGUF.path.get()
        let before = try GGUFReader.open(src).metadata.keys
        let g = try GGUFExport.plan(source: src, options: o)
        #expect(g.metadata["llama.context_length"] == .u32(4096))
        #expect(g.metadata.keys.firstIndex(of: "llama.context_length") == before.firstIndex(of: "llama.context_length"))
    }
}
