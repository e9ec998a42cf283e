import CKernels
import Foundation

/// Both cores, without the overhead of spawning threads for small work.
enum Parallel {
    static let cores = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Runs body(0..<n) concurrently. The callers give each index disjoint output, and concurrentPerform returns
    /// only when every index is done, so the non-Sendable body (it captures the caller's buffers) is safe to share.
    static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { if n == 1 { body(0) }; return }
        withoutActuallyEscaping(body) { b in
            let shared = UncheckedSendable(b)
            DispatchQueue.concurrentPerform(iterations: n) { shared.value($0) }
        }
    }

    /// forEach on CKernels' spinning pool (pool.c), for the forward pass's many short products: its workers stay
    /// awake between them instead of being woken for each. Same contract as forEach.
    static func forEachHot(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { if n == 1 { body(0) }; return }
        withoutActuallyEscaping(body) { b in
            var job = b
            withUnsafeMutablePointer(to: &job) { p in
                bk_pool_run(Int64(n), { ctx, i in ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i)) }, p)
            }
        }
    }

    /// forEach for bodies that throw: every index runs to its end, then the error of the lowest failing index is
    /// rethrown (a fixed choice, so the same failure gives the same message).
    static func forEach(_ n: Int, _ body: (Int) throws -> Void) throws {
        if n <= 1 { if n == 1 { try body(0) }; return }
        let failures = UncheckedSendable(UnsafeMutableBufferPointer<Error?>.allocate(capacity: n))
        failures.value.initialize(repeating: nil)
        defer { failures.value.deallocate() }
        forEach(n) { i in
            do { try body(i) } catch { failures.value[i] = error }
        }
        if let e = failures.value.compactMap({ $0 }).first { throw e }
    }
}

/// Shares a value the compiler cannot prove Sendable with concurrentPerform's iterations, which the callers give
/// disjoint work and which all end before the call returns.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
