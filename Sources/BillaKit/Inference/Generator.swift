import Dispatch
import Foundation

/// Next-token choice: greedy (temperature 0, the default) or sampling with temperature and nucleus (top-p), from a
/// seeded generator so a run can be repeated.
public struct Sampler: Sendable {
    public var temperature: Double
    public var topP: Double
    private var state: UInt64

    public init(temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        state = seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// SplitMix64: small, fast and good enough to draw tokens.
    private mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }

    public mutating func next(_ logits: ArraySlice<Float>) -> Int {
        if temperature <= 0 { return LogitMetrics.argmax(logits) }
        let lp = LogitMetrics.logSoftmax(logits.map { Float(Double($0) / temperature) }[...])
        var order = Array(lp.indices).sorted { lp[$0] > lp[$1] }
        var mass = 0.0, keep = 0
        for i in order {
            mass += Foundation.exp(lp[i])
            keep += 1
            if mass >= topP { break }
        }
        order = Array(order.prefix(keep))
        var r = uniform() * mass
        for i in order {
            r -= Foundation.exp(lp[i])
            if r <= 0 { return i }
        }
        return order.last ?? 0
    }
}

/// How long the prompt and the generation took: what a benchmark compares with llama.cpp's pp and tg rates.
public struct GenerationTiming: Codable, Sendable {
    public var promptTokens: Int
    public var promptSeconds: Double
    /// Tokens run through the model after the prompt (the last one sampled is not run).
    public var generated: Int
    public var generationSeconds: Double

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", promptSeconds = "prompt_seconds", generated = "generated_run", generationSeconds = "generation_seconds"
    }
}

extension Verifier.Loaded {
    /// Generates up to `count` tokens after `prompt`, calling `emit` with each new piece of text as soon as it forms
    /// whole characters. Stops early at EOS. Returns the generated ids.
    public func generate(_ prompt: String, count: Int, sampler: Sampler, stopAtEOS: Bool = true, timing: ((GenerationTiming) -> Void)? = nil,
                         progress: ProgressMeter? = nil, emit: (String) -> Void) throws -> [Int] {
        var sampler = sampler
        let tokens = try tokenize(prompt)
        let cache = KVCache(for: model.weights, capacity: tokens.count + count)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try model.forward(tokens, cache: cache, allLogits: false)
        let t1 = DispatchTime.now().uptimeNanoseconds
        defer {
            let t2 = DispatchTime.now().uptimeNanoseconds
            timing?(GenerationTiming(promptTokens: tokens.count, promptSeconds: Double(t1 - t0) / 1e9,
                                     generated: max(0, cache.length - tokens.count), generationSeconds: Double(t2 - t1) / 1e9))
        }
        var out = [Int]()
        // Decoding prompt + output keeps the space sentencepiece drops at the start of a decoded text.
        var shown = try tokenizer?.decode(tokens) ?? ""
        for _ in 0..<count {
            let id = sampler.next(logits[...])
            if stopAtEOS, id == tokenizer?.eosID { break }
            out.append(id)
            progress?.add(1)
            if let tokenizer {
                let text = try tokenizer.decode(tokens + out)
                // a byte-fallback character arrives over several tokens; wait until it is whole
                if !text.hasSuffix("\u{FFFD}"), text.count >= shown.count, text.hasPrefix(shown) {
                    emit(String(text.dropFirst(shown.count)))
                    shown = text
                }
            } else {
                emit("[\(id)]")
            }
            if out.count == count { break }
            logits = try model.forward([id], cache: cache, allLogits: false)
        }
        return out
    }
}
