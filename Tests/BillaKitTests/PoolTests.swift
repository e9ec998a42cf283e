import Foundation
import Synchronization
import Testing
@testable import BillaKit

/// The forward pass's spinning pool (CKernels/pool.c): every index runs exactly once, a nested call falls back to a
/// plain loop instead of deadlocking, and submitters on several threads at once all finish.
@Suite("spinning pool") struct PoolTests {
    @Test func everyIndexRunsOnce() {
        for n in [0, 1, 2, 3, 7, 64, 1000] {
            let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(n, 1))
            counts.initialize(repeating: 0)
            defer { counts.deallocate() }
            nonisolated(unsafe) let c = counts
            for _ in 0..<50 { Parallel.forEachHot(n) { c[$0] += 1 } }
            #expect((0..<n).allSatisfy { counts[$0] == 50 }, "n = \(n): \(Array(counts.prefix(min(n, 16))))")
        }
    }

    @Test func nestedCallsRunSerially() {
        let total = Atomic<Int>(0)
        Parallel.forEachHot(4) { _ in
            Parallel.forEachHot(5) { _ in total.add(1, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 20)
    }

    @Test func concurrentSubmittersAllFinish() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 { Parallel.forEachHot(3) { _ in total.add(1, ordering: .relaxed) } }
        }
        #expect(total.load(ordering: .relaxed) == 4 * 200 * 3)
    }
}
