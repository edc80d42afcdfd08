package xnor.tflite;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;

/**
 * The project's native kernels (native/isa_neon.cc on arm64, native/isa_portable.cc
 * elsewhere) through libxnor_kernels.so, a freestanding JNI library (android_demo/jni/).
 *
 * <p>The library has no allocator and no threads: tensors live in direct ByteBuffers and
 * {@link #parallel} splits output rows across a fixed pool of Java threads. It is loaded
 * once: from the path in the system property {@code xnor.native.library} if set (host
 * JVM), else by {@code System.loadLibrary("xnor_kernels")} (the APK's lib/arm64-v8a/);
 * {@code -Dxnor.native=off} disables it. When it does not load, {@link #REASON} says why
 * and the interpreter uses its Java kernels; {@link #describe} is what the app and the
 * command line show.
 */
public final class NativeKernels {
    private NativeKernels() {}

    /** Whether the native kernels loaded. */
    public static final boolean LOADED;
    /** The kernels' ISA ("neon", "portable") if loaded, else why the library did not load. */
    public static final String ISA, REASON;
    /** Threads that native kernels are split across. */
    public static final int THREADS;
    private static final ExecutorService POOL;

    static {
        String isa = null, reason = null;
        String path = System.getProperty("xnor.native.library");
        if ("off".equals(System.getProperty("xnor.native"))) {
            reason = "disabled by -Dxnor.native=off";
        } else {
            try {
                if (path != null) {
                    System.load(path);
                } else {
                    System.loadLibrary("xnor_kernels");
                }
                isa = isa();
            } catch (UnsatisfiedLinkError e) {
                reason = String.valueOf(e.getMessage());
            } catch (SecurityException e) {
                reason = e.toString();
            }
        }
        LOADED = isa != null;
        ISA = isa;
        REASON = reason;
        int threads = Integer.getInteger("xnor.native.threads",
                Runtime.getRuntime().availableProcessors());
        THREADS = Math.max(1, threads);
        POOL = LOADED && THREADS > 1 ? Executors.newFixedThreadPool(THREADS, new ThreadFactory() {
            @Override
            public Thread newThread(Runnable r) {
                Thread t = new Thread(r, "xnor-native");
                t.setDaemon(true);
                return t;
            }
        }) : null;
    }

    /** One line for the app's overlay and the command line: which kernels run, and why. */
    public static String describe() {
        return LOADED
                ? "LceQuantize, LceBMaxPool2d, LceBconv2d: native (" + ISA + ", " + THREADS
                        + " threads)"
                : "Java kernels (native not loaded: " + REASON + ")";
    }

    /** Work on the rows [begin, end) of an output. */
    interface Rows {
        void run(int begin, int end);
    }

    /** Runs {@code rows} split into contiguous ranges, one per thread, and waits for all. */
    static void parallel(int rows, final Rows work) {
        int tasks = Math.min(rows, THREADS);
        if (POOL == null || tasks < 2) {
            work.run(0, rows);
            return;
        }
        List<Future<?>> futures = new ArrayList<Future<?>>(tasks);
        for (int t = 0; t < tasks; t++) {
            final int begin = (int) ((long) rows * t / tasks);
            final int end = (int) ((long) rows * (t + 1) / tasks);
            futures.add(POOL.submit(new Runnable() {
                @Override
                public void run() {
                    work.run(begin, end);
                }
            }));
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ModelException("interrupted while running native kernels");
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof RuntimeException) {
                    throw (RuntimeException) cause;
                }
                throw new ModelException("native kernel failed: " + cause);
            }
        }
    }

    /** A kernel's input and output direct buffers (native byte order), made on first use. */
    static final class Buffers {
        ByteBuffer in, out;

        /** The input buffer, for {@code n} 4-byte values. */
        ByteBuffer in(int n) {
            in = in == null ? buffer(n) : in;
            return in;
        }

        ByteBuffer out(int n) {
            out = out == null ? buffer(n) : out;
            return out;
        }

        private static ByteBuffer buffer(int n) {
            return ByteBuffer.allocateDirect(4 * Math.max(n, 1)).order(ByteOrder.nativeOrder());
        }
    }

    /** A direct buffer of {@code bytes} bytes in native byte order. */
    static ByteBuffer direct(long bytes) {
        if (bytes < 0 || bytes > Integer.MAX_VALUE) {
            throw new ModelException("native buffer of " + bytes + " bytes");
        }
        return ByteBuffer.allocateDirect((int) Math.max(bytes, 8)).order(ByteOrder.nativeOrder());
    }

    static native String isa();

    /**
     * Bytes of a binary convolution's plan buffer; spec = {batch, inH, inW, channelsIn, groups,
     * channelsOut, filterH, filterW, strideH, strideW, dilationH, dilationW, paddingSame,
     * padValue, activation, outputType (0 float, 1 int8, 2 bitpacked),
     * floatToRawIntBits(outputScale), outputZeroPoint}. Throws IllegalArgumentException
     * with the reason for a spec the kernels cannot run.
     */
    static native long bconvPlanBytes(int[] spec);

    /** Packs the filter and output transform into {@code plan} (null: unused tensors). */
    static native void bconvPrepare(int[] spec, ByteBuffer filter, ByteBuffer multiplier,
            ByteBuffer bias, ByteBuffer thresholds, ByteBuffer plan);

    /**
     * Of a prepared plan: 0 output height, 1 width, 2 depth, 3 scratch bytes per running
     * task range, 4 tasks when split for {@code threads}, 5 output bytes.
     */
    static native long bconvQuery(ByteBuffer plan, int what, int threads);

    /** Tasks [taskBegin, taskEnd) of the split for {@code threads}, with this caller's scratch. */
    static native void bconvRun(ByteBuffer plan, ByteBuffer in, ByteBuffer out,
            ByteBuffer scratch, int threads, int taskBegin, int taskEnd);

    /** LceQuantize of float rows [rowBegin, rowEnd) of {@code in} (rows x cols) into {@code out}. */
    static native void quantize(ByteBuffer in, ByteBuffer out, int rows, int cols, int rowBegin,
            int rowEnd);

    /**
     * LceBMaxPool2d output rows [rowBegin, rowEnd) of batch x outH; geometry = {batch, inH,
     * inW, words, filterH, filterW, strideH, strideW, outH, outW, padTop, padLeft}.
     */
    static native void bmaxpool(ByteBuffer in, ByteBuffer out, int[] geometry, int rowBegin,
            int rowEnd);
}
