import Foundation

/// What `billa imatrix` computes over a text, as llama-imatrix computes it: the text is tokenized once (BOS
/// first), cut into `contextSize`-token chunks whose first token becomes BOS, and every chunk runs from an empty
/// cache while a collector adds up each matrix input's squared columns.
public struct ImatrixOptions: Sendable {
    /// Tokens per chunk (llama-imatrix -c; its default 512).
    public var contextSize = 512
    /// At most this many chunks (--chunks); nil: every whole chunk of the text.
    public var maxChunks: Int?
    /// Chunks skipped at the start of the text (--chunk / --from-chunk).
    public var skipChunks = 0
    /// Also collect the output head's input (--process-output); llama-imatrix leaves it out by default.
    public var processOutput = false
    /// The name the file records for the text (llama-imatrix records the -f argument as given).
    public var dataset = ""
    /// Statistics to go on from (--in-file, already combined with `ImportanceMatrix.combine`): the new tokens add
    /// into the same f32 sums, as llama-imatrix adds them into what it loaded.
    public var start: ImportanceMatrix?

    public init() {}
}

/// A run's account, for the report.
public struct ImatrixSummary: Sendable, Encodable {
    public let tokens: Int
    public let chunks: Int
    public let contextSize: Int
    public let entries: Int
    public let seconds: Double

    public init(tokens: Int, chunks: Int, contextSize: Int, entries: Int, seconds: Double) {
        self.tokens = tokens
        self.chunks = chunks
        self.contextSize = contextSize
        self.entries = entries
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case tokens, chunks, entries, seconds
        case contextSize = "context_size"
    }
}

public enum ImatrixRun {
    /// llama-imatrix ignores products over fewer tokens than this (ggml's scheduler callback asks only for them).
    static let minimumTokens = 16

    /// Computes the importance matrix of `model` over `text`. `progress` is called after each chunk.
    public static func compute(_ model: Verifier.Loaded, text: String, options: ImatrixOptions,
                               progress: (Int, Int) -> Void = { _, _ in }) throws -> (ImportanceMatrix, ImatrixSummary) {
        let start = Date()
        let n = options.contextSize
        guard n >= minimumTokens else {
            throw BillaError(.invalidArgument, "a context of \(n) tokens records nothing: llama-imatrix skips products over fewer than \(minimumTokens) tokens",
                             remedy: "use -c \(minimumTokens) or more (llama-imatrix's default is 512)")
        }
        var tokens = try model.tokenize(text)
        let textTokens = tokens.count
        if options.skipChunks > 0 {
            guard (options.skipChunks + 2) * n < tokens.count else {
                throw BillaError(.invalidArgument, "skipping \(options.skipChunks) chunks of \(n) tokens leaves too few of the text's \(tokens.count) tokens",
                                 remedy: "skip fewer chunks (--from-chunk) or use a longer text")
            }
            tokens.removeFirst(options.skipChunks * n)
        }
        guard tokens.count >= 2 * n else {
            throw BillaError(.invalidArgument, "the text is \(tokens.count) tokens; a context of \(n) needs at least \(2 * n) (as llama-imatrix requires)",
                             remedy: "use a longer text or a smaller context (-c)")
        }
        let all = tokens.count / n
        let chunks = min(all, options.maxChunks ?? all)
        let collector = ImatrixCollector(model.model.weights, processOutput: options.processOutput, start: options.start)
        let bos = model.bos
        let cache = KVCache(for: model.model.weights, capacity: n)
        for c in 0..<chunks {
            var chunk = Array(tokens[(c * n)..<((c + 1) * n)])
            if let bos { chunk[0] = bos }
            cache.reset()
            _ = try model.model.forward(chunk, cache: cache, allLogits: options.processOutput, observer: collector)
            if let (name, have, want) = collector.mismatch {
                throw BillaError(.shapeMismatch, tensor: name, "the --in-file matrices hold \(have) sums for it where this model's product has \(want) columns",
                                 remedy: "go on only from an importance matrix of this model")
            }
            if let bad = collector.firstNonFinite() {
                throw BillaError(.invalidArgument, file: model.path, tensor: bad, "the squared activations at this product's input are not finite (chunk \(c + 1))",
                                 remedy: "the model overflows on this text in f32: check it with billa verify MODEL")
            }
            progress(c + 1, chunks)
        }
        let entries = collector.entries()
        let datasets = (options.start?.datasets ?? []) + (options.dataset.isEmpty ? [] : [options.dataset])
        // llama-imatrix's chunk count is the most tokens any entry saw over the chunk size (loaded ones included).
        let chunkCount = options.start == nil ? chunks : Int(entries.values.flatMap(\.counts).max() ?? 0) / n
        let matrix = ImportanceMatrix(entries: entries, datasets: datasets, chunkCount: chunkCount, chunkSize: n)
        return (matrix, ImatrixSummary(tokens: textTokens, chunks: chunks, contextSize: n, entries: matrix.entries.count,
                                       seconds: Date().timeIntervalSince(start)))
    }
}

/// Sums each matrix input's squared columns in f32, token after token, as llama-imatrix's collect_imatrix does
/// (the same order of additions, so the sums differ from llama's only by the activations themselves). Keyed by
/// GGUF name whatever the model's layout, because llama-quantize looks entries up by GGUF name.
final class ImatrixCollector: ForwardObserver {
    private var sums: [String: [Float]] = [:]
    private var counts: [String: Int64] = [:]
    private let ggufNames: [String: String]
    private let processOutput: Bool

    /// The first entry whose --in-file sums do not fit the model's product: (name, sums, columns).
    private(set) var mismatch: (String, Int, Int)?

    init(_ weights: LlamaWeights, processOutput: Bool, start: ImportanceMatrix? = nil) {
        self.processOutput = processOutput
        for (name, e) in start?.entries ?? [:] {
            sums[name] = e.sums
            counts[name] = e.counts.first ?? 0
        }
        var names: [String: String] = [:]
        for naming in [WeightNaming.meta, .hf, .gguf] {
            for l in 0..<weights.parameters.nLayers {
                for (a, b) in zip(naming.layer(l), WeightNaming.gguf.layer(l)) { names[a] = b }
            }
            names[naming.output] = WeightNaming.gguf.output
        }
        ggufNames = names
    }

    func matmulInput(name: String, layer: Int?, _ x: UnsafePointer<Float>, tokens: Int, cols: Int) {
        guard tokens >= ImatrixRun.minimumTokens, layer != nil || processOutput, let key = ggufNames[name] else { return }
        if let have = sums[key]?.count, have != cols {
            if mismatch == nil { mismatch = (key, have, cols) }
            return
        }
        sums[key, default: [Float](repeating: 0, count: cols)].withUnsafeMutableBufferPointer { a in
            for t in 0..<tokens {
                let row = x + t * cols
                for j in 0..<cols { a[j] += row[j] * row[j] }
            }
        }
        counts[key, default: 0] += Int64(tokens)
    }

    func firstNonFinite() -> String? {
        sums.keys.sorted().first { sums[$0]!.contains { !$0.isFinite } }
    }

    func entries() -> [String: ImportanceMatrix.Entry] {
        sums.reduce(into: [:]) { out, kv in out[kv.key] = ImportanceMatrix.Entry(sums: kv.value, counts: [counts[kv.key] ?? 0]) }
    }
}
