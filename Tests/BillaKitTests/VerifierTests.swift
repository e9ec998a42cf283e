import CKernels
import Foundation
import Testing
@testable import BillaKit

/// transformers' numbers for the trained tiny model (scripts/fixtures/make_verify_fixtures.py).
enum TrainedGolden {
    struct Golden: Decodable { let prompts: [String]; let tokens_scored: Int; let ppl: Double; let max_abs_logit: Double }
    static let path = Fixtures.path("verify/trained")
    static let golden: Golden = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("verify/trained.json")))
            return try JSONDecoder().decode(Golden.self, from: data)
        } catch {
            preconditionFailure("Tests/Fixtures/verify/trained.json is unreadable (\(error)); regenerate with scripts/fixtures/make_verify_fixtures.py")
        }
    }()
}

@Suite("verify and generate")
struct VerifierTests {
    static func scratch(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "billa-verify-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func sanityPerplexityIsTransformers() throws {
        #expect(Verifier.defaultPrompts == TrainedGolden.golden.prompts, "the generator's copy of the default prompts is stale")
        let m = try Verifier.Loaded(TrainedGolden.path)
        let r = try Verifier.sanity(m, prompts: Verifier.defaultPrompts)
        #expect(r.pass, "\(r.checks)")
        #expect(abs(r.ppl - TrainedGolden.golden.ppl) <= 1e-4 * TrainedGolden.golden.ppl, "billa ppl \(r.ppl), transformers \(TrainedGolden.golden.ppl)")
    }

    /// A random model is no better than guessing, and the sanity check says so.
    @Test func randomModelFailsThePerplexityCheck() throws {
        let r = try Verifier.sanity(Verifier.Loaded(Fixtures.path("tiny-meta")), prompts: Verifier.defaultPrompts)
        #expect(!r.pass)
        #expect(r.checks.first { $0.name == "perplexity" }?.ok == false)
    }

    @Test func metaAndHFAgreeAsLossless() throws {
        let r = try Verifier.compare(Verifier.Loaded(Fixtures.path("tiny-meta")), Verifier.Loaded(Fixtures.path("tiny-hf-st")),
                                     prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == "lossless")
        #expect(r.pass, "\(r.failures)")
        #expect(r.top1Agreement == 1)
    }

    /// The classic conversion bug: HF names without the rotary permutation of wq / wk. It must fail.
    @Test func unpermutedConversionFails() throws {
        let dir = try Self.scratch("unpermuted")
        let hf = try Release.open(Fixtures.path("tiny-hf-st"))
        let meta = try Release.open(Fixtures.path("tiny-meta-full.safetensors"))
        var plans = [TensorPlan]()
        for (_, t) in hf.tensors {
            // q_proj / k_proj straight from Meta's interleaved rows: what a script that forgot permute() writes
            if let (metaName, rotary) = LlamaNames.meta(fromHF: t.name), rotary != .none, let m = meta.files[0].tensor(named: metaName) {
                plans.append(TensorPlan(copying: m, as: t.name))
            } else {
                plans.append(TensorPlan(copying: t))
            }
        }
        try SafetensorsWriter.write(plans, to: dir + "/model.safetensors")
        for f in ["config.json", "tokenizer.model"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/" + f), toPath: dir + "/" + f)
        }
        let r = try Verifier.compare(Verifier.Loaded(Fixtures.path("tiny-meta")), Verifier.Loaded(dir), prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == "lossless")
        #expect(!r.pass)
        #expect(r.maxAbsDiff > 1e-3 * r.maxAbsLogit)
    }

    /// Quantized GGUF files of the trained model pass their type's thresholds; the type is recognised. (q4_k_m
    /// on rows of 64 and 192 columns falls back to Q5_0 as llama-quantize does, since K-quant blocks are 256 wide.)
    @Test(arguments: [("q8_0", DType.q8_0), ("q4_0", DType.q4_0), ("q4_k_m", DType.q5_0)])
    func quantizedGGUFPassesItsThresholds(recipe: String, lossiest: DType) throws {
        let dir = try Self.scratch("gguf-\(recipe)")
        let plan = try GGUFExport.plan(source: TrainedGolden.path, options: GGUFExportOptions(recipe: try #require(QuantRecipe(name: recipe))))
        try plan.write(to: dir + "/model.gguf")
        let cand = try Verifier.Loaded(dir + "/model.gguf")
        #expect(cand.tokenizer != nil, "the GGUF's own vocabulary gives a tokenizer")
        let r = try Verifier.compare(Verifier.Loaded(TrainedGolden.path), cand, prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == lossiest.rawValue.lowercased().replacingOccurrences(of: "_k", with: "_K"))
        #expect(r.pass, "\(recipe): \(r.failures)")
        #expect(r.kldMean > 0, "a quantized model cannot be identical")
    }

    /// A GGUF in f32 is a lossless copy of the f16 weights, in Meta's rotary layout.
    @Test func f32GGUFIsLossless() throws {
        let dir = try Self.scratch("gguf-f32")
        let plan = try GGUFExport.plan(source: TrainedGolden.path, options: GGUFExportOptions(recipe: try #require(QuantRecipe(name: "f32"))))
        try plan.write(to: dir + "/model.gguf")
        let cand = try Verifier.Loaded(dir + "/model.gguf")
        #expect(cand.model.weights.rope == .interleaved)
        let r = try Verifier.compare(Verifier.Loaded(TrainedGolden.path), cand, prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == "lossless")
        #expect(r.pass, "\(r.failures)")
    }

    @Test func packIsLosslessAndCarriesItsTokenizer() throws {
        let dir = try Self.scratch("pack")
        try Packer.pack(Release.open(TrainedGolden.path), options: PackOptions(), to: dir + "/m.billa", quiet: true)
        let cand = try Verifier.Loaded(dir + "/m.billa")
        #expect(cand.tokenizer != nil)
        let r = try Verifier.compare(Verifier.Loaded(TrainedGolden.path), cand, prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == "lossless")
        #expect(r.maxAbsDiff == 0, "the same weights in the same layout give the same logits")
        #expect(try Verifier.sanity(cand, prompts: ["Human: 你好\nAssistant: "]).checks.contains { $0.name == "pack checksums" && $0.ok })
    }

    @Test func greedyGenerationIsTransformers() throws {
        let m = try Verifier.Loaded(Fixtures.path("tiny-hf-st"))
        for p in VerifyGolden.golden.prompts {
            let ids = try m.generate(p.text, count: p.greedy.count, sampler: Sampler()) { _ in }
            #expect(ids == p.greedy, "prompt '\(p.text)'")
        }
    }

    @Test func vocabularyMismatchIsAClearError() throws {
        let ref = try Verifier.Loaded(Fixtures.path("tiny-hf-st"))
        #expect(throws: BillaError.self) {
            try Verifier.compare(ref, Verifier.Loaded(Fixtures.path("recover/billa/trained")), prompts: ["x"])
        }
    }

    /// Every body of every kernel type agrees with the Swift dequantizers (checked against ggml's goldens in
    /// QuantTests): one test per body, called directly; a body this CPU lacks is skipped, saying so.
    static let kernelTypes = [DType.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    @Test("portable kernels agree with the dequantizers", arguments: kernelTypes)
    func portableKernelsAgree(dtype: DType) throws { try Self.kernelsAgree(dtype: dtype, body: KernelBodies.portable, name: "portable") }

    @Test("AVX2 kernels (without the AVX-512 prompt tiles) agree with the dequantizers",
          .enabled(if: KernelBodies.hasAVX2, KernelBodies.noAVX2), arguments: kernelTypes)
    func avx2KernelsAgree(dtype: DType) throws { try Self.kernelsAgree(dtype: dtype, body: KernelBodies.avx2, name: "AVX2") }

    @Test("AVX-512 kernels (prompt tiles, panels, VNNI where the CPU has it) agree with the dequantizers",
          .enabled(if: KernelBodies.hasAVX512, KernelBodies.noAVX512), arguments: kernelTypes)
    func avx512KernelsAgree(dtype: DType) throws { try Self.kernelsAgree(dtype: dtype, body: KernelBodies.avx512, name: "AVX-512") }

    static func kernelsAgree(dtype: DType, body: Int32, name: String) throws {
        // 53 rows: a 32-row outer-product panel (f16/bf16) or three 16-row int8 panels (VNNI, Q4_0/Q8_0), then 4-row
        // tiles and a single row; f16/bf16 rows end in a partial 16-lane step
        let cols = dtype.quantType == nil ? 520 : 512, rows = 53
        var values = [Float](repeating: 0, count: rows * cols)
        var seed: UInt64 = 7
        for i in values.indices {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            // magnitudes that change every 16 values, so every sub-block scale differs and a scale applied to the
            // wrong elements shows
            values[i] = Float(Int64(bitPattern: seed >> 11) % 2000) / 20000 * Float(1 + (i / 16) % 7)
        }
        let bytes: [UInt8]
        if let q = dtype.quantType {
            bytes = Quantizer.quantize(values, cols: cols, to: q)
        } else {
            var b = [UInt8](repeating: 0, count: rows * cols * 2)
            values.withUnsafeBufferPointer { v in b.withUnsafeMutableBytes { FloatRows.fromF32(v.baseAddress!, count: rows * cols, to: dtype, into: $0.baseAddress!) } }
            bytes = b
        }
        var want = [Float](repeating: 0, count: rows * cols)
        let kernel = try #require(KernelType.of(dtype))
        bytes.withUnsafeBytes { src in
            want.withUnsafeMutableBufferPointer { dst in
                if let q = dtype.quantType { Quantizer.dequantize(src.baseAddress!, count: rows * cols, from: q, into: dst.baseAddress!) }
                else { _ = FloatRows.toF32(src.baseAddress!, dtype, count: rows * cols, into: dst.baseAddress!) }
            }
        }
        do {
            let portable = body == KernelBodies.portable
            var got = [Float](repeating: 0, count: rows * cols)
            // Widening has no AVX-512 body: the AVX-512 test widens with the AVX2 one.
            let widen = body == KernelBodies.avx512 ? KernelBodies.avx2 : body
            let widened = bytes.withUnsafeBytes { src in got.withUnsafeMutableBufferPointer { bk_to_f32_using(widen, kernel, src.baseAddress!, $0.baseAddress!, Int64(rows * cols)) } }
            #expect(widened == 1, "\(dtype) \(name): the widening body did not run")
            if let i = (0..<got.count).first(where: { abs(got[$0] - want[$0]) > 1e-6 * max(1, abs(want[$0])) }) {
                Issue.record("\(dtype) \(name): element \(i) (block \(i / dtype.blockSize)) widens to \(got[i]), the dequantizer gives \(want[i])")
            }
            // and the row dot products equal dot products of the widened rows: one token (the fused row·vector
            // kernels) and five (4x2 tiles, then a leftover token)
            for ntok in [1, 5, 13] {
                let x = (0..<(ntok * cols)).map { Float(($0 * 7) % 17) / 17 - 0.5 }
                var y = [Float](repeating: 0, count: ntok * rows)
                var scratch = [Float](repeating: 0, count: Int(BK_SCRATCH_ROWS) * cols)
                let rowBytes = bytes.count / rows
                let ran = bytes.withUnsafeBytes { w in
                    bk_rows_dot_using(body, kernel, w.baseAddress!, rowBytes, Int64(rows), Int64(cols), x, Int64(cols), Int64(ntok), &y, Int64(rows), &scratch)
                }
                #expect(ran == 1, "\(dtype) \(name): the body did not run")
                // One token over Q8_0/Q4_0/Q6_K on the fast body runs as llama.cpp does: x quantized to Q8 blocks, int8
                // products; so do prompts over Q8_0/Q4_0 on the best body when the CPU has AVX-512 VNNI. The error is
                // bounded by sum |w| * (block amax / 127) / 2.
                let vnni = body == KernelBodies.avx512 && ntok > 1 && (dtype == .q8_0 || dtype == .q4_0) && bk_prompt_int8() == 1
                let q8x = !portable && (ntok == 1 && (dtype == .q8_0 || dtype == .q4_0 || dtype == .q6_K) || vnni)
                for t in 0..<ntok {
                    for r in 0..<rows {
                        var s = 0.0, bound = 0.0
                        for c in 0..<cols {
                            s += Double(want[r * cols + c]) * Double(x[t * cols + c])
                            if q8x {
                                let blk = t * cols + c / 32 * 32
                                let amax = (blk..<(blk + 32)).map { abs(Double(x[$0])) }.max() ?? 0
                                bound += abs(Double(want[r * cols + c])) * amax / 254
                            }
                        }
                        #expect(abs(Double(y[t * rows + r]) - s) <= 1e-4 * max(1, abs(s)) + 1.01 * bound, "\(dtype) \(name) \(ntok) tokens: row \(r) token \(t): \(y[t * rows + r]) vs \(s)")
                    }
                }
            }
        }
    }
}
