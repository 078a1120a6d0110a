// The C heap's behaviour for the tape's temporaries. A forward + backward pass allocates and frees the
// same large buffers (0.1–10 MB) every step; with glibc's defaults each free at the top of the heap
// returns the pages to the kernel (trim) and the next step faults them in again and the kernel clears
// them: about a tenth of a multi-head attention step and half of a batch-norm step on [8, 128, 64, 64]
// (32 MiB buffers, which glibc would map and unmap on their own). Processes that run many steps (the certify CLI)
// keep freed memory for reuse instead. Blocks up to 1 GiB come from the heap: IADG's im2col buffers at 256×256
// (about 300 MB) were mapped and faulted in afresh by every convolution, 10 % of a training step.

#if canImport(Glibc)
import Glibc
#endif

public enum Allocator {
    /// Makes glibc's malloc keep up to `trimThreshold` bytes of freed memory at the top of the heap
    /// instead of returning it to the kernel, and serve blocks below `mmapThreshold` from the heap
    /// (larger ones still map and unmap their own pages). Process-wide; call once, early. A no-op
    /// where the C library is not glibc. Results do not depend on it, only the time spent in page faults.
    public static func retainFreedMemory(trimThreshold: Int = 1 << 30, mmapThreshold: Int = 1 << 30) {
        #if canImport(Glibc)
        // mallopt is declared in <malloc.h>, which Swift's Glibc module does not include: look it up.
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
        let mTrimThreshold: Int32 = -1, mMmapThreshold: Int32 = -3  // <malloc.h>
        _ = mallopt(mMmapThreshold, Int32(clamping: mmapThreshold))
        _ = mallopt(mTrimThreshold, Int32(clamping: trimThreshold))
        #endif
    }
}
