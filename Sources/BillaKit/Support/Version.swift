import CKernels

public enum BillaVersion {
    public static let string = "0.1.0"

    /// The commit scripts/build recorded ("unknown" for a plain `swift build`), so a bug report names the code.
    public static var commit: String { String(cString: bk_build_commit()) }

    /// Which bodies the run-time dispatch chose on this CPU, because speed and the int8 prompt products (and so the
    /// exact numbers `verify` prints for Q4_0 / Q8_0) depend on it.
    public static var kernels: String {
        guard bk_fast_path() != 0 else { return "portable C (this CPU lacks AVX2+FMA+F16C, or is not x86-64)" }
        var parts = ["AVX2+FMA+F16C"]
        if bk_avx512_in_use() != 0 {
            parts.append(bk_cpu_has_avx512_vnni() != 0 ? "AVX-512 with VNNI (int8 prompt products)" : "AVX-512")
        } else if bk_cpu_has_avx512() != 0 {
            parts.append("AVX-512 available but off (BILLA_NO_AVX512)")
        } else {
            parts.append("no AVX-512 on this CPU")
        }
        return parts.joined(separator: ", ")
    }

    /// What `billa --version` prints.
    public static var description: String {
        "billa \(string)\ncommit: \(commit)\nkernels: \(kernels)"
    }
}
