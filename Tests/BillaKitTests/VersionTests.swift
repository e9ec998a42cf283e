import Foundation
import Testing
@testable import BillaKit

/// `billa --version` names the kernels the dispatch chose; the expectation comes from the kernel's own CPU report
/// (/proc/cpuinfo), not from the code that prints it.
@Suite("billa --version")
struct VersionTests {
    static let cpuFlags: Set<String>? = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        return Set(line.split(separator: ":").last.map { $0.split(separator: " ").map(String.init) } ?? [])
    }()

    @Test("prints the version, the commit and the kernels this CPU supports",
          .enabled(if: cpuFlags != nil, "needs /proc/cpuinfo (Linux) to know what the CPU supports"))
    func versionNamesKernels() throws {
        let run = try CLITests().billa(["--version"], stdin: nil)
        #expect(run.status == 0)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "billa \(BillaVersion.string)")
        #expect(lines.contains { $0.hasPrefix("commit: ") })
        let kernels = try #require(lines.first { $0.hasPrefix("kernels: ") })
        let flags = try #require(VersionTests.cpuFlags)
        let avx2 = ["avx2", "fma", "f16c"].allSatisfy(flags.contains)
        let avx512 = ["avx512f", "avx512vl", "avx512bw", "avx512dq"].allSatisfy(flags.contains)
        #expect(kernels.contains("AVX2+FMA+F16C") == avx2, "\(kernels) vs cpuinfo avx2/fma/f16c = \(avx2)")
        if avx2 {
            #expect(kernels.contains("no AVX-512 on this CPU") == !avx512, "\(kernels) vs cpuinfo avx512 = \(avx512)")
            if avx512 {
                #expect(kernels.contains("VNNI") == flags.contains("avx512_vnni"), "\(kernels)")
            }
        }
    }
}
