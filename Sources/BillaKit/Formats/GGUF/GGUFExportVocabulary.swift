/// Which vocabulary a release's GGUF gets, chosen as convert_hf_to_gguf.py's LlamaModel.set_vocab chooses:
///
/// * a SentencePiece `tokenizer.model` (protobuf) wins when present (`_set_vocab_sentencepiece` is tried first):
///   the "llama" vocabulary of GGUFVocabulary, with a Hugging Face directory's added tokens;
/// * otherwise a byte-level BPE `tokenizer.json` (Llama-3, Qwen2): the "gpt2" vocabulary of GGUFBPEVocabulary
///   (`_set_vocab_gpt2`). A tokenizer.json that is not byte-level (LLaMA-2's SentencePiece conversion, which
///   the converter reads with LlamaHfVocab) is refused by name;
/// * a Meta original's tiktoken `tokenizer.model` (Llama-3): the "gpt2" vocabulary its HF conversion would get.
///   In an HF directory a tiktoken file beside tokenizer.json gives way to tokenizer.json (the converter would
///   fail on it as SentencePiece).
enum GGUFExportVocabulary {
    /// What GGUFExport writes and reports.
    struct Chosen {
        let writer: (inout GGUFMetadata) -> Void
        let paddingCount: Int
        let notes: [String]

        func write(into m: inout GGUFMetadata) { writer(&m) }
    }

    /// `pre`: --tokenizer-pre, for a byte-level BPE tokenizer the converter's hash table does not know.
    static func load(_ release: Release, rows: Int, pre: String? = nil) throws -> Chosen {
        let side = release.sideFiles
        let hf = release.layout == .huggingFace
        let model = try side.bytes("tokenizer.model")
        let tiktoken = model.map { BPETokenizer.isTiktoken(Array($0.prefix(512))) } ?? false
        if let model, !tiktoken {
            if let pre {
                throw BillaError(.invalidArgument, file: side.location("tokenizer.model"), "--tokenizer-pre \(pre) names a byte-level BPE pre-tokenizer, but the vocabulary is this SentencePiece model's",
                                 remedy: "drop --tokenizer-pre")
            }
            let spm = try SentencePieceModel(bytes: model, path: side.location("tokenizer.model"))
            let v = try GGUFVocabulary.load(spm, rows: rows, hfFiles: hf ? side : nil)
            return Chosen(writer: v.write(into:), paddingCount: v.paddingCount, notes: v.notes)
        }
        if hf, try side.bytes("tokenizer.json") != nil {
            let v: GGUFBPEVocabulary
            do { v = try GGUFBPEVocabulary.load(hf: side, rows: rows, pre: pre) } catch var e as BillaError where e.code == .unsupported && !e.message.contains("pre-tokenizer") {
                // a SentencePiece conversion (Metaspace) is what the converter reads with LlamaHfVocab
                e.remedy = "GGUF export reads byte-level BPE tokenizer.json files (Llama-3, Qwen2) or a SentencePiece tokenizer.model; copy the release's tokenizer.model into the directory"
                throw e
            }
            var notes = v.notes
            if tiktoken { notes.append("\(side.location("tokenizer.model")) is Meta's tiktoken file; the vocabulary is tokenizer.json's") }
            return Chosen(writer: v.write(into:), paddingCount: v.paddingCount, notes: notes)
        }
        if let model, tiktoken {
            let v = try GGUFBPEVocabulary.load(tiktoken: model, path: side.location("tokenizer.model"), rows: rows, pre: pre)
            return Chosen(writer: v.write(into:), paddingCount: v.paddingCount, notes: v.notes)
        }
        throw BillaError(.notFound, file: release.path,
                         hf ? "no tokenizer.model or tokenizer.json next to the weights; GGUF needs the vocabulary"
                            : "no tokenizer.model next to the weights; GGUF needs the vocabulary",
                         remedy: "copy the release's tokenizer files into the model directory (or pack the directory that has them)")
    }
}
