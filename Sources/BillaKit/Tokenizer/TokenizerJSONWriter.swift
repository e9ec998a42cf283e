import Foundation

/// Meta's Llama-3 tiktoken `tokenizer.model` as the `tokenizer.json` that transformers'
/// `convert_llama_weights_to_hf.py --llama_version 3.1` writes: TikTokenConverter's BPE (vocabulary by rank, merges
/// derived from the ranks, ignore_merges), Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=False), the
/// ByteLevel decoder, the 256 special tokens as special added tokens, and Llama3Converter's post-processor
/// (ByteLevel, then TemplateProcessing "<|begin_of_text|> $A"). Written as tokenizers 0.23 serializes it (compact
/// JSON, vocabulary in id order, merges as "left right" strings), so the file equals transformers' byte for byte.
enum TokenizerJSONWriter {
    static func llama3(from t: BPETokenizer) -> [UInt8] {
        precondition(t.kind == .tiktoken, "llama3(from:) takes Meta's tiktoken tokenizer")
        let specials = BPETokenizer.llama3SpecialTokens
        let base = t.decodeBytes.count - specials.count
        var out = [UInt8]()
        out.reserveCapacity(7_000_000)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        func quoted(_ s: String) { put(JSONText.quote(s)) }
        put(#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":["#)
        for (i, s) in specials.enumerated() {
            if i > 0 { put(",") }
            put(#"{"id":\#(base + i),"content":"#)
            quoted(s)
            put(#","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}"#)
        }
        put(#"],"normalizer":null,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"#)
        quoted(SplitPattern.llama3Regex)
        put(#"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]},"#)
        let bos = specials[0]
        put(#""post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},"#)
        put(#"{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"\#(bos)","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"#)
        put(#""pair":[{"SpecialToken":{"id":"\#(bos)","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"\#(bos)","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"#)
        put(#""special_tokens":{"\#(bos)":{"id":"\#(bos)","ids":[\#(base)],"tokens":["\#(bos)"]}}}]},"#)
        put(#""decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},"#)
        put(#""model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":true,"vocab":{"#)
        let spelled = (0..<base).map { ByteLevelAlphabet.encode(t.decodeBytes[$0]) }
        for id in 0..<base {
            if id > 0 { put(",") }
            quoted(spelled[id])
            put(":\(id)")
        }
        put(#"},"merges":["#)
        for (k, m) in t.tiktokenMergeStrings().enumerated() {
            if k > 0 { put(",") }
            quoted(m)
        }
        put("]}}")
        return out
    }

    /// tokenizer_config.json as transformers 5.23's PreTrainedTokenizerFast(bos_token, eos_token, model_input_names,
    /// model_max_length, clean_up_tokenization_spaces=True).save_pretrained writes it (no special_tokens_map.json).
    static func llama3Config(maxLength: Int, eos: String) -> String {
        PythonJSON.indented(PythonJSON.Object([
            ("backend", "tokenizers"), ("bos_token", "<|begin_of_text|>"), ("clean_up_tokenization_spaces", true),
            ("eos_token", eos),
            ("model_input_names", ["input_ids", "attention_mask"] as [Any?]), ("model_max_length", maxLength),
            ("tokenizer_class", "TokenizersBackend"),
        ])) + "\n"
    }
}

/// The way back: a Llama-3 `tokenizer.json` (TikTokenConverter's) as Meta's tiktoken `tokenizer.model`, one
/// "base64(token bytes) rank" line per base token with the rank its id, so HF -> Meta gives Meta's own file.
enum TiktokenWriter {
    /// nil when the tokenizer is not Llama-3's shape: a byte-level BPE with Llama-3's regex, ignore_merges, base
    /// ids 0..<n with the 256 special tokens at n... (Meta's code adds those by rule, so only that layout round-trips).
    static func llama3(from t: BPETokenizer) -> [UInt8]? {
        let specials = BPETokenizer.llama3SpecialTokens
        let base = t.decodeBytes.count - specials.count
        guard t.kind == .tokenizerJSON, t.pattern == .llama3, t.ignoreMerges, base > 256,
              specials.enumerated().allSatisfy({ t.literalPieces[Int32(base + $0.offset)] == $0.element }),
              (0..<base).allSatisfy({ !t.decodeBytes[$0].isEmpty && t.literalPieces[Int32($0)] == nil }) else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(base * 16)
        for id in 0..<base {
            out += Base64.encode(t.decodeBytes[id])
            out.append(0x20)
            out += Array(String(id).utf8)
            out.append(0x0A)
        }
        return out
    }
}

extension Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding (Python's base64.b64encode).
    static func encode(_ b: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        var i = 0
        while i + 3 <= b.count {
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        if b.count - i == 1 {
            let v = UInt32(b[i]) << 16
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], 0x3D, 0x3D]
        } else if b.count - i == 2 {
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], 0x3D]
        }
        return out
    }
}
