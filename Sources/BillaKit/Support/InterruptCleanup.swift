import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C, `kill` and a closed terminal end billa without leaving a temporary behind: on SIGINT, SIGTERM or SIGHUP
/// every live temporary (`Temporaries`) is removed and the process exits with 128 + the signal's number (130, 143,
/// 129), as a shell reports a process the signal killed.
///
/// Why this is safe: there is no signal handler. `install` blocks the three signals in the calling thread before
/// any other thread exists (it is the first thing `billa` does), so every thread created afterwards inherits the
/// block and the kernel can deliver them to no thread; a dedicated thread takes them with `sigwait(3)`, which
/// returns them as ordinary values. The cleanup therefore runs as normal code on a normal thread, where locks,
/// allocation and Foundation are allowed (none of which a signal handler may use). It takes the temporaries'
/// lock and never gives it back, so no thread can create or rename a temporary after the list was read, removes
/// them, and ends the process with `_exit`, which runs no atexit handlers that could wait for the other threads.
public enum InterruptCleanup {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Call first in `main`, before anything starts a thread.
    public static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        // A signal the parent set to be ignored stays ignored (`nohup billa ...`, `billa ... &` in a script).
        var taken = 0
        for s in signals {
            var current = sigaction()
            sigaction(s, nil, &current)
            if unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            sigaddset(&set, s)
            taken += 1
        }
        guard taken > 0 else { return }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let mask = set
        let waiter = Thread {
            var waitFor = mask
            var sig: Int32 = 0
            while sigwait(&waitFor, &sig) != 0 {}
            let removed = Temporaries.removeAllForExit()
            let name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP"
            let text = "\nbilla: \(name): removed \(removed) unfinished temporary output\(removed == 1 ? "" : "s")\n"
            text.utf8CString.withUnsafeBufferPointer { b in _ = write(2, b.baseAddress, b.count - 1) }
            _exit(128 + sig)
        }
        waiter.name = "billa.signals"
        waiter.start()
    }
}
