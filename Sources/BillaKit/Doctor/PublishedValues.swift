/// Every published checksum or sum `billa doctor` recognises, in one table, each with where it was published.
/// Nothing here was computed by billa: the values are copied from the sources named in each entry, and a value
/// that could not be found published (65B's params.json md5, Llama-2's checklists) is left out. A digest found here tells which official file a download is; one not
/// found here proves nothing either way.
public struct PublishedValue: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case md5(String)
        case sha256(String)
        /// The sum of a tensor (or of all tensors) after recovery, as the releasing script computes it.
        case sum(Double, tolerance: Double)
    }
    public let value: Value
    /// The model the file belongs to ("LLaMA-7B", "Chinese-Alpaca-Plus-13B").
    public let model: String
    /// The file (or tensor) the value is for ("consolidated.00.pth", "pytorch_model file 1 of 2").
    public let file: String
    /// Where it was published: a URL, or repository + path.
    public let source: String

    public init(_ value: Value, model: String, file: String, source: String) {
        self.value = value
        self.model = model
        self.file = file
        self.source = source
    }

    public var algorithm: HashAlgorithm? {
        switch value {
        case .md5: return .md5
        case .sha256: return .sha256
        case .sum: return nil
        }
    }

    public var digest: String? {
        switch value {
        case .md5(let d), .sha256(let d): return d
        case .sum: return nil
        }
    }
}

public enum PublishedValues {
    /// The entries whose digest is `digest` (lowercase hex of either length).
    public static func lookup(_ digest: String, in table: [PublishedValue] = table) -> [PublishedValue] {
        let d = digest.lowercased()
        return table.filter { $0.digest == d }
    }

    static let metaChecklists = "https://github.com/shawwn/llama-dl/issues/4 (Meta's tokenizer_checklist.chk and 7B/13B/30B/65B checklist.chk, concatenated)"
    static let metaMD5Issue = "https://github.com/ggml-org/llama.cpp/issues/238 (md5sum of Meta's consolidated.*.pth)"
    static let llamaCppSums = "github.com/ggml-org/llama.cpp SHA256SUMS (models/*/consolidated.*.pth, params.json)"
    static let claSums = "github.com/ymcui/Chinese-LLaMA-Alpaca SHA256.md"
    static let billaScript = "github.com/Neutralzz/BiLLa embedding_convert.py (EMBED_SUM, the fp32 sum of BiLLa-7B-SFT's recovered embedding)"
    static let alpacaScript = "github.com/tatsu-lab/stanford_alpaca weight_diff.py recover (the sum of every recovered tensor, atol 1e-2)"

    private static func md5(_ d: String, _ model: String, _ file: String, _ source: String) -> PublishedValue {
        PublishedValue(.md5(d), model: model, file: file, source: source)
    }
    private static func sha(_ d: String, _ model: String, _ file: String, _ source: String = claSums) -> PublishedValue {
        PublishedValue(.sha256(d), model: model, file: file, source: source)
    }
    /// Parts listed in one cell of a table, in the table's order.
    private static func parts(_ digests: [String], _ model: String, _ stem: String, _ source: String = claSums) -> [PublishedValue] {
        digests.enumerated().map { i, d in sha(d, model, "\(stem) part \(i + 1) of \(digests.count) (in the table's order)", source) }
    }

    public static let table: [PublishedValue] = {
        var t: [PublishedValue] = [
            // Meta's LLaMA-1 checklist.chk (md5) and tokenizer_checklist.chk. 65B's params.json md5 was not found.
            md5("eeec4125e9c7560836b4873b6f8e3025", "LLaMA (all sizes)", "tokenizer.model", metaChecklists),
            md5("6efc8dab194ab59e49cd24be5574d85e", "LLaMA-7B", "consolidated.00.pth", metaChecklists),
            md5("7596560e011154b90eb51a1b15739763", "LLaMA-7B", "params.json", metaChecklists),
            md5("0804c42ca65584f50234a86d71e6916a", "LLaMA-13B", "consolidated.00.pth", metaChecklists),
            md5("016017be6040da87604f77703b92f2bc", "LLaMA-13B", "consolidated.01.pth", metaChecklists),
            md5("0171286599e0f8858893e49fb74b71f8", "LLaMA-13B", "params.json", metaChecklists),
            md5("f856e9d99c30855d6ead4d00cc3a5573", "LLaMA-33B (30B)", "consolidated.00.pth", metaChecklists),
            md5("d9dbfbea61309dc1e087f5081e98331a", "LLaMA-33B (30B)", "consolidated.01.pth", metaChecklists),
            md5("2b2bed47912ceb828c0a37aac4b99073", "LLaMA-33B (30B)", "consolidated.02.pth", metaChecklists),
            md5("ea0405cdb5bc638fee12de614f729ebc", "LLaMA-33B (30B)", "consolidated.03.pth", metaChecklists),
            md5("4babdbd05b8923226a9e9622492054b6", "LLaMA-33B (30B)", "params.json", metaChecklists),
            md5("9deae67e2e7b5ccfb2c738f390c00854", "LLaMA-65B", "consolidated.00.pth", metaMD5Issue),
            md5("0c4b00c30460c3818bd184ee949079ee", "LLaMA-65B", "consolidated.01.pth", metaMD5Issue),
            md5("847194df776dd38f8ae9ddcede8829a1", "LLaMA-65B", "consolidated.02.pth", metaMD5Issue),
            md5("3b6c8adcb5654fd36abab3206b46a0f1", "LLaMA-65B", "consolidated.03.pth", metaMD5Issue),
            md5("68d61d1242597ad92616ec31b8cb6b4c", "LLaMA-65B", "consolidated.04.pth", metaMD5Issue),
            md5("7f71259eaee2b906aa405d8edf39925f", "LLaMA-65B", "consolidated.05.pth", metaMD5Issue),
            md5("0574e26b6891ab2cb0df7340d773fe9b", "LLaMA-65B", "consolidated.06.pth", metaMD5Issue),
            md5("e5d9790df955270b836aec79462ead22", "LLaMA-65B", "consolidated.07.pth", metaMD5Issue),

            // SHA-256 of Meta's LLaMA-1 files (7B-33B also in Chinese-LLaMA-Alpaca's SHA256.md, identical).
            sha("700df0d3013b703a806d2ae7f1bfb8e59814e3d06ae78be0c66368a50059f33d", "LLaMA-7B", "consolidated.00.pth", llamaCppSums),
            sha("7e89e242ddc0dd6f060b43ca219ce8b3e8f08959a72cb3c0855df8bb04d46265", "LLaMA-7B", "params.json", llamaCppSums),
            sha("745bf4e29a4dd6f411e72976d92b452da1b49168a4f41c951cfcc8051823cf08", "LLaMA-13B", "consolidated.00.pth", llamaCppSums),
            sha("d5ccbcc465c71c0de439a5aeffebe8344c68a519bce70bc7f9f92654ee567085", "LLaMA-13B", "consolidated.01.pth", llamaCppSums),
            sha("4ab77bec4d4405ccb66a97b282574c89a94417e3c32e5f68f37e2876fc21322f", "LLaMA-13B", "params.json", llamaCppSums),
            sha("e23294a58552d8cdec5b7e8abb87993b97ea6eced4178ff2697c02472539d067", "LLaMA-33B (30B)", "consolidated.00.pth", llamaCppSums),
            sha("4e077b7136c7ae2302e954860cf64930458d3076fcde9443f4d0e939e95903ff", "LLaMA-33B (30B)", "consolidated.01.pth", llamaCppSums),
            sha("24a87f01028cbd3a12de551dcedb712346c0b5cbdeff1454e0ddf2df9b675378", "LLaMA-33B (30B)", "consolidated.02.pth", llamaCppSums),
            sha("1adfcef71420886119544949767f6a56cb6339b4d5fcde755d80fe68b49de93b", "LLaMA-33B (30B)", "consolidated.03.pth", llamaCppSums),
            sha("2c07118ea98d69dbe7810d88520e30288fa994751b337f8fca02b171955f44cb", "LLaMA-33B (30B)", "params.json", llamaCppSums),
            sha("135c563f6b3938114458183afb01adc9a63bef3d8ff7cccc3977e5d3664ecafe", "LLaMA-65B", "consolidated.00.pth", llamaCppSums),
            sha("9a600b37b19d38c7e43809485f70d17d1dc12206c07efa83bc72bb498a568bde", "LLaMA-65B", "consolidated.01.pth", llamaCppSums),
            sha("e7babf7c5606f165a3756f527cb0fedc4f83e67ef1290391e52fb1cce5f26770", "LLaMA-65B", "consolidated.02.pth", llamaCppSums),
            sha("73176ffb426b40482f2aa67ae1217ef79fbbd1fff5482bae5060cdc5a24ab70e", "LLaMA-65B", "consolidated.03.pth", llamaCppSums),
            sha("882e6431d0b08a8bc66261a0d3607da21cbaeafa96a24e7e59777632dbdac225", "LLaMA-65B", "consolidated.04.pth", llamaCppSums),
            sha("a287c0dfe49081626567c7fe87f74cce5831f58e459b427b5e05567641f47b78", "LLaMA-65B", "consolidated.05.pth", llamaCppSums),
            sha("72b4eba67a1a3b18cb67a85b70f8f1640caae9b40033ea943fb166bd80a7b36b", "LLaMA-65B", "consolidated.06.pth", llamaCppSums),
            sha("d27f5b0677d7ff129ceacd73fd461c4d06910ad7787cf217b249948c3f3bc638", "LLaMA-65B", "consolidated.07.pth", llamaCppSums),
            sha("999ed1659b469ccc2a941714c0a9656fa571d17c9f7c8c7589817ca90edef51b", "LLaMA-65B", "params.json", llamaCppSums),

            // Chinese-LLaMA-Alpaca: tokenizers and LoRA adapters.
            sha("e2676d4ca29ca1750f6ff203328d73b189321dc5776ceede037cbd36541d70c0", "Chinese-LLaMA (7B, 13B, 33B)", "tokenizer.model"),
            sha("2d967e855b1213a439df6c8ce2791f869c84b4f3b6cfacf22b86440b8192a2f8", "Chinese-Alpaca (7B, 13B, 33B)", "tokenizer.model"),
            sha("2a2c24d096f5d509f24946fdbd8c25e1ce4a0acb955902f7436d74c0c0379d86", "Chinese-LLaMA-7B LoRA", "adapter_model.bin"),
            sha("8c928db86b2a0cf73f019832f921eb7e1e069ca21441b4bfa12c4381c6cc46be", "Chinese-LLaMA-Plus-7B LoRA", "adapter_model.bin"),
            sha("6a4ce789d219bde122f8d9a20371937f2aa2ee86a2311d9f5e303df2e774f9fc", "Chinese-LLaMA-13B LoRA", "adapter_model.bin"),
            sha("784fcff9c4bdf4e77d442a01158e121caf8fcce0f97ffb32396fe7a3617ee7e8", "Chinese-LLaMA-Plus-13B LoRA", "adapter_model.bin"),
            sha("93a449bafb71ff1bb74a4a21e64e102e5078e5c3898eb40d013790072a0fa3de", "Chinese-LLaMA-33B LoRA", "adapter_model.bin"),
            sha("16f2544f4b5be9840dbb1a8071a9bc42627ed4232be3b0b600b43f7b4b5f08a7", "Chinese-LLaMA-Plus-33B LoRA", "adapter_model.bin"),
            sha("0d9b6ed8e4a7d1ae590a16c89a452a488d66ff07e45487972f61c2b6e46e36de", "Chinese-Alpaca-7B LoRA", "adapter_model.bin"),
            sha("4ee0bf805c312a9a771624d481fbdb4485e1b0a70cd2a8da9f96137f177b795d", "Chinese-Alpaca-Plus-7B LoRA", "adapter_model.bin"),
            sha("3cd2776908c3f5efe68bf6cf0248cb0e80fb7c55a52b8406325c9f0ca37b8594", "Chinese-Alpaca-Pro-7B LoRA", "adapter_model.bin"),
            sha("cb8dda3c005f3343a0740dcd7237fbb600cb14b6bff9b6f3d488c086a2f08ada", "Chinese-Alpaca-13B LoRA", "adapter_model.bin"),
            sha("a1fcdcb6d7e1068f925fb36ec78632c76058ba12ba352bed4d44060b8e6f4706", "Chinese-Alpaca-Plus-13B LoRA", "adapter_model.bin"),
            sha("f076b20fc2390ddbc35fd56d580d46ea834b33bbae34a4bb3cb7b571e60602e0", "Chinese-Alpaca-Pro-13B LoRA", "adapter_model.bin"),
            sha("6b39da4c682e715a9de30b247b7e9b812d2d54f7d320ec9b452000a5cd4d178d", "Chinese-Alpaca-33B LoRA", "adapter_model.bin"),
            sha("411f5b9351abcc33c13a82bdd97ddcff81ad7993a8ddb83085b7ea97fad92fc7", "Chinese-Alpaca-Plus-33B LoRA", "adapter_model.bin"),
            sha("0e7ba4951f605d2c0a7f0bcb983d7f6ed075c8dd23fbbcbc8a8c9643247212a3", "Chinese-Alpaca-Pro-33B LoRA", "adapter_model.bin"),
            sha("245427a306e3253db3f534e2a1d7548a8eb781ae8761f9e98979b4aced6b43d8", "Chinese-LLaMA-7B merged (PyTorch >= 1.13)", "consolidated.00.pth"),
            sha("f8d380d63f77a08b7f447f5ec63f0bb1cde9ddeae2207e9f86e6b5f0f95a7955", "Chinese-LLaMA-Plus-7B merged (PyTorch >= 1.13)", "consolidated.00.pth"),
            sha("fbfccc91183169842aac8d093379f0a449b5a26c5ee7a298baf0d556f1499b90", "Chinese-Alpaca-7B merged (PyTorch >= 1.13)", "consolidated.00.pth"),
            sha("8b8f6551d0d83f93e378622b9f8dad0bec189da6c29d8a78de493e6aee9bd35f", "Chinese-Alpaca-Plus-7B merged (PyTorch >= 1.13)", "consolidated.00.pth"),

            // Sums the recovery scripts check (billa recover compares them too).
            PublishedValue(.sum(BillaRecovery.billa7BSFTSum, tolerance: 1e-2), model: "BiLLa-7B-SFT", file: "model.embed_tokens.weight (recovered)", source: billaScript),
            PublishedValue(.sum(WeightDiffRecovery.alpaca7BSum, tolerance: 1e-2), model: "Alpaca-7B", file: "all recovered tensors", source: alpacaScript),
        ]
        // Original LLaMA in HF format (pytorch_model-*.bin), as Chinese-LLaMA-Alpaca lists them.
        t += parts(["0087155d6df07106c1d910bfeb6aab1be8e612dfbf2b56ddfb4ccbde7dbd50d0", "461bc5e50200db7813ff99cc0b9316c48ccbd6aaaa31bf8cf7bee0b64bc3eda3"],
                   "LLaMA-7B (HF)", "pytorch_model-*.bin")
        t += parts(["dd20cdee2637408c6ab88c13f5c27d153bacd0e99f2d55f6a66fbd0269944436", "1aba886c5f28d2e2e9b04ab3c4f5bc250c6b06efc1baa3f557677b3097f70e6a",
                    "2efc56cddb7877c830bc5b402ee72996aedb5694c9e8007bf1d52d72c0d97d26"], "LLaMA-13B (HF)", "pytorch_model-*.bin")
        t += parts(["9c2a7223ab5f9cf3d46913d2b776e99cbd6ed93f69991594b92a8cef0c681a78", "4984274738e52195f4b1a5b35d719cf0fade6df1f645507d92d61af4dd8dcdfe",
                    "64c73932562810c5c33b15bfec5921d3ced0e8cdb3766c214eda2f45fa3edd13", "c7d72d11770f5b58eb45c2dd8e19aae2cbd5a03463b564de3945b21825ebacba",
                    "174128542031f4ad7ceb6c799e8e5461ec1ca91a72a01402c567e5f6a8b33d8c", "80e2cfa18994385fa88f03d500017346dfd6dc1e58e957d046af39d9a7e254fa",
                    "065611608159615ced8d38473ee693129a1a0d872ced0ad8daf09290af7c7061"], "LLaMA-33B (HF)", "pytorch_model-*.bin")
        // Merged Chinese models in several consolidated.NN.pth parts.
        t += parts(["aa7f4599487ea2b0d0aca2b522c39370897f9afd9839aac7d02155957f1f019f", "3954f3e7f7264994f23800a04423e6563cc1959ac699d9eaaa6801b4f9392ebd"],
                   "Chinese-LLaMA-13B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["4de7d188003c778f216342de2dc5c9a9c74278c701c63a7b6bcd7957f5ebfdf5", "ff8046f9eb8b05dd86597c21edd07894aec00b31842a4c11996a4003091ea7c9"],
                   "Chinese-LLaMA-Plus-13B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["054e9b7dffa3b92a053ca32acac6e22b27c184ed2b8563f8e44e6570ba416357", "a0fe86c45a0819f45a509776d82778b7de75fbff8d37afa97159b24de5448b7b",
                    "13df5f74dc7bc1204076b1febef818fb3cec978de27bf8fc85c70e7d62282df9", "f4f28106c343c5804613faa9852f29fbc60764366bcb0d37ef2811a17be2d336"],
                   "Chinese-LLaMA-33B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["0da2fa92c054aa4010ffe1746afbc5bdd89c07b8e418d74debcbf0de74c00692", "35e25e7fe47f978d52da6cdae3272b3b4ea42a37ea8ece84a4d758350d188397",
                    "c20f80a7da24b4be72a7f617311e3e2e9346a476d85b3f1a28095497bb1857b0", "ae5276fe06fd9d039ed295d627c0048d5d96c2390de413f610b093c151370d3c"],
                   "Chinese-LLaMA-Plus-33B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["30cefb5be9091c3e17fbba5d91bf16266a2ddf86cde53370a9982b232ff8a2f4", "ce946742b0f122f472e192c3f77d506e0c26578b4b881d07d919553333affecd"],
                   "Chinese-Alpaca-13B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["1834558214c1dddc0d8b2826ece086908b9d2293241d0e12cecb48a035ec561b", "bf70001600ce166f6ca4ef59df5510f0582cdc119fb74e27d9cf3e4c7b142015"],
                   "Chinese-Alpaca-Plus-13B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        t += parts(["72bfe67481c0df1b8c3b536acd15ac42c1163b0727b1beb6409ee31d14cb2490", "fd2151ea714a6e0706a60cca5ab7abf8558e665d4cb001481c6df616c0821c16",
                    "4a7e3de6881769f9c2413f0867e67da20efdf4502602ab90483cb99c593e51ed", "99c81a7a310802dcc579fe96288fbc18d4486f92020eaf925e1c33db8311378a"],
                   "Chinese-Alpaca-33B merged (PyTorch >= 1.13)", "consolidated.*.pth")
        return t
    }()
}
