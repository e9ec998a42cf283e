import Foundation

/// Finds the tokenizer that belongs to a model, wherever the model keeps it, and opens it as what it is:
/// - a directory with `tokenizer.json` uses it, as transformers' fast tokenizer does (over a `tokenizer.model`
///   beside it);
/// - a `tokenizer.model` is sniffed: protobuf is SentencePiece, "base64 rank" lines are Meta's tiktoken file;
/// - a billa pack's `tokenizer.model` blob, or the vocabulary inside a GGUF: a "llama" one (which llama.cpp reads
///   as a byte-fallback BPE SentencePiece model) or a "gpt2" byte-level BPE one (Llama-3, Qwen2), read as
///   llama.cpp reads it (BPETokenizer(gguf:)).
public enum ModelTokenizer {
    /// The tokenizer, or nil when the model carries none.
    public static func load(for release: Release) throws -> (any TextTokenizer)? {
        if release.layout != .file, !release.isPack, let t = try directory(release.path) { return t }
        if let path = release.tokenizerPath { return try open(path) }
        guard release.layout == .file || release.files.count == 1, let file = release.files.first else { return nil }
        switch file.format {
        case .billaPack:
            return try packed(.pack(file.path))
        case .gguf:
            return try fromGGUF(GGUFReader.open(file.path))
        default:
            return nil
        }
    }

    /// A pack's tokenizer blobs, chosen as for a directory: tokenizer.json, else tokenizer.model (SentencePiece or
    /// tiktoken by its content).
    static func packed(_ files: SideFiles) throws -> (any TextTokenizer)? {
        let hasModel = try files.bytes("tokenizer.model") != nil
        if let json = try files.bytes("tokenizer.json") {
            let path = files.location("tokenizer.json")
            do {
                let eos = try files.json("tokenizer_config.json").flatMap { ($0["eos_token"] as? String) ?? (($0["eos_token"] as? [String: Any])?["content"] as? String) }
                return try BPETokenizer(tokenizerJSONRoot: BPETokenizer.parseTokenizerJSON(Data(json), path: path), path: path, eosToken: eos)
            } catch let e as BillaError where e.code == .unsupported && hasModel {
                StatusLine.standardError.message("note: \(path): \(e.message); encoding with the tokenizer.model beside it as sentencepiece does\n")
            }
        }
        guard let model = try files.bytes("tokenizer.model") else { return nil }
        let path = files.location("tokenizer.model")
        if BPETokenizer.isTiktoken(Array(model.prefix(512))) { return try BPETokenizer(tiktokenBytes: model, path: path) }
        return try Tokenizer(model: SentencePieceModel(bytes: model, path: path))
    }

    /// A tokenizer file by its content: tokenizer.json, SentencePiece protobuf, tiktoken text, or a GGUF model's
    /// vocabulary. A directory means its tokenizer.json, else its tokenizer.model.
    public static func open(_ path: String) throws -> any TextTokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file or directory", remedy: "check the path")
        }
        if isDir.boolValue {
            if let t = try directory(path) { return t }
            throw BillaError(.notFound, file: path, "the directory has no tokenizer.json or tokenizer.model",
                             remedy: "pass the tokenizer file itself")
        }
        if try FormatSniffer.detect(MappedFile(path: path)) == .billaPack {
            guard let t = try packed(.pack(path)) else {
                throw BillaError(.notFound, file: path, "the pack holds no tokenizer.json or tokenizer.model blob",
                                 remedy: "pass the model's tokenizer file itself")
            }
            return t
        }
        switch try kind(of: path) {
        case .tokenizerJSON: return try BPETokenizer(tokenizerJSON: path)
        case .tiktoken: return try BPETokenizer(tiktoken: path)
        case .sentencepiece: return try Tokenizer(path: path)
        case .gguf:
            guard let t = try fromGGUF(GGUFReader.open(path)) else {
                throw BillaError(.notFound, file: path, "the GGUF has no tokenizer.ggml.tokens: it carries no vocabulary",
                                 remedy: "pass the model's tokenizer.json or tokenizer.model")
            }
            return t
        }
    }

    /// A directory's tokenizer: tokenizer.json as transformers' fast tokenizer takes it, else tokenizer.model; nil
    /// when it has neither. A tokenizer.json billa does not encode (LLaMA-1/2's SentencePiece conversions, with a
    /// Metaspace pre-tokenizer) beside a tokenizer.model gives way to that model, which it was converted from, encoded
    /// as sentencepiece (and llama.cpp) encode it. A note on stderr says so: transformers' fast tokenizer differs
    /// from sentencepiece on text that starts with a space, and a hand-edited tokenizer.json could differ more.
    static func directory(_ dir: String) throws -> (any TextTokenizer)? {
        let json = dir + "/tokenizer.json", model = dir + "/tokenizer.model"
        let hasModel = FileManager.default.fileExists(atPath: model)
        if FileManager.default.fileExists(atPath: json) {
            do {
                return try BPETokenizer(tokenizerJSON: json, eosToken: eosToken(inDirectory: dir))
            } catch let e as BillaError where e.code == .unsupported && hasModel {
                StatusLine.standardError.message("note: \(json): \(e.message); encoding with the tokenizer.model beside it as sentencepiece does (transformers' fast tokenizer differs from it on text that starts with a space)\n")
            }
        }
        return hasModel ? try open(model) : nil
    }

    /// What a tokenizer file is, from its first bytes.
    public static func kind(of path: String) throws -> TokenizerKind {
        let file = try MappedFile(path: path)
        let head = withExtendedLifetime(file) { Array(file.all.prefix(512)) }
        if head.starts(with: Array("GGUF".utf8)) { return .gguf }
        if let first = head.first(where: { ![0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }), first == 0x7B { return .tokenizerJSON }
        if BPETokenizer.isTiktoken(head) { return .tiktoken }
        return .sentencepiece
    }

    /// The eos token a Hugging Face directory names: tokenizer_config.json's eos_token (a string or {content}).
    static func eosToken(inDirectory dir: String) -> String? {
        guard let data = FileManager.default.contents(atPath: dir + "/tokenizer_config.json"),
              let cfg = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        if let s = cfg["eos_token"] as? String { return s }
        return (cfg["eos_token"] as? [String: Any])?["content"] as? String
    }

    /// The GGUF's vocabulary by tokenizer.ggml.model: "gpt2" is byte-level BPE (BPETokenizer(gguf:)); "llama" is
    /// a SentencePiece model rebuilt from the keys: llama.cpp's SPM vocabulary is BPE over these pieces and
    /// scores, with byte fallback, a dummy prefix and '▁' for spaces. Other models are refused by name; nil when
    /// the file has no vocabulary.
    static func fromGGUF(_ g: GGUFFile) throws -> (any TextTokenizer)? {
        guard case .array? = g.metadata[GGUFKeys.tokens] else { return nil }
        let model = g.metadata[GGUFKeys.tokenizerModel]?.stringValue ?? "(none)"
        switch model {
        case "gpt2": return try BPETokenizer(gguf: g)
        case "llama": return try sentencePiece(g)
        default:
            throw BillaError(.unsupported, file: g.path, "tokenizer.ggml.model '\(model)' is not a vocabulary billa reads (llama, gpt2)",
                             remedy: "use llama.cpp's llama-tokenize for this model, or pass --tokenizer with its tokenizer file")
        }
    }

    static func sentencePiece(_ g: GGUFFile) throws -> Tokenizer? {
        guard case .array(_, let tokens)? = g.metadata[GGUFKeys.tokens] else { return nil }
        var scores = [GGUFValue]()
        if case .array(_, let s)? = g.metadata[GGUFKeys.scores] { scores = s }
        var types = [GGUFValue]()
        if case .array(_, let t)? = g.metadata[GGUFKeys.tokenTypes] { types = t }
        var proto = Sentencepiece_ModelProto()
        for (i, t) in tokens.enumerated() {
            var piece = Sentencepiece_ModelProto.SentencePiece()
            piece.piece = t.stringValue ?? ""
            if i < scores.count, case .f32(let s) = scores[i] { piece.score = s }
            switch i < types.count ? types[i].intValue ?? 1 : 1 {
            case 2: piece.type = .unknown
            case 3: piece.type = .control
            case 4: piece.type = .userDefined
            case 5: piece.type = .unused
            case 6: piece.type = .byte
            default: piece.type = .normal
            }
            proto.pieces.append(piece)
        }
        proto.trainerSpec.modelType = .bpe
        proto.trainerSpec.byteFallback = true
        proto.trainerSpec.unkID = Int32(g.metadata[GGUFKeys.unk]?.intValue ?? 0)
        proto.trainerSpec.bosID = Int32(g.metadata[GGUFKeys.bos]?.intValue ?? 1)
        proto.trainerSpec.eosID = Int32(g.metadata[GGUFKeys.eos]?.intValue ?? 2)
        proto.trainerSpec.padID = Int32(g.metadata[GGUFKeys.pad]?.intValue ?? -1)
        proto.normalizerSpec.name = "identity"
        proto.normalizerSpec.addDummyPrefix = true
        proto.normalizerSpec.removeExtraWhitespaces = false
        proto.normalizerSpec.escapeWhitespaces = true
        return try Tokenizer(model: SentencePieceModel(proto: proto, path: g.path))
    }
}
