package xnor.demo;

import android.Manifest;
import android.app.Activity;
import android.content.pm.PackageManager;
import android.hardware.Camera;
import android.os.Build;
import android.os.Bundle;
import android.os.Handler;
import android.os.HandlerThread;
import android.util.Log;
import android.view.Surface;
import android.view.SurfaceHolder;
import android.view.SurfaceView;
import android.widget.FrameLayout;

import java.io.IOException;
import java.nio.charset.Charset;
import java.util.List;
import java.util.Locale;

import xnor.tflite.Classifier;
import xnor.tflite.ImageSource;
import xnor.tflite.Images;
import xnor.tflite.Interpreter;
import xnor.tflite.Model;
import xnor.tflite.ModelException;
import xnor.tflite.ModelSpec;
import xnor.tflite.NativeKernels;

/**
 * Classifies camera preview frames with the bundled binary (XNOR) network.
 *
 * <p>Each NV21 frame is rotated upright, preprocessed exactly as the model was trained (its
 * spec comes from the model's metadata, or assets/model_spec.json), and run through the pure
 * Java interpreter on a worker thread; frames that arrive while it is busy are skipped.
 */
public class MainActivity extends Activity implements SurfaceHolder.Callback,
        Camera.PreviewCallback {
    private static final String TAG = "XnorDemo";
    private static final int REQUEST_CAMERA = 1;
    private static final int TOP_K = 3;

    private SurfaceView preview;
    private OverlayView overlay;
    private boolean surfaceReady;
    private Camera camera;
    private int frameRotation;
    private int frameWidth, frameHeight;
    private HandlerThread worker;
    private Handler workerHandler;
    private volatile boolean busy;
    private boolean askedForPermission;
    private Classifier classifier;
    private String modelLine = "";
    private double averageMillis;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        FrameLayout root = new FrameLayout(this);
        preview = new SurfaceView(this);
        overlay = new OverlayView(this);
        root.addView(preview);
        root.addView(overlay);
        setContentView(root);
        preview.getHolder().addCallback(this);
        try {
            classifier = loadClassifier();
            modelLine = describeModel();
            overlay.show(new String[0], "Waiting for the camera...", modelLine);
        } catch (ModelException e) {
            Log.e(TAG, "cannot load the model", e);
            overlay.show(new String[] {"Model error"}, e.getMessage(), "");
        } catch (IOException e) {
            Log.e(TAG, "cannot read the model", e);
            overlay.show(new String[] {"Model error"}, e.toString(), "");
        }
    }

    private Classifier loadClassifier() throws IOException {
        byte[] model = readAsset("model.tflite");
        Interpreter interpreter = new Interpreter(model);
        Log.i(TAG, "kernels: " + NativeKernels.describe());
        ModelSpec spec = ModelSpec.fromModel(interpreter.model());
        if (spec == null) {
            spec = ModelSpec.fromJson(new String(readAsset("model_spec.json"),
                    Charset.forName("UTF-8")), "assets/model_spec.json");
        }
        return new Classifier(interpreter, spec);
    }

    private String describeModel() {
        String description = "";
        try {
            description = ModelSpec.fromJson(new String(readAsset("model_spec.json"),
                    Charset.forName("UTF-8")), "assets/model_spec.json").description;
        } catch (IOException e) {
            // No sidecar: the model's own metadata is enough to run.
        } catch (ModelException e) {
            Log.w(TAG, "ignoring assets/model_spec.json: " + e.getMessage());
        }
        ModelSpec s = classifier.spec;
        String input = s.height + "x" + s.width + (s.rgb ? " RGB" : " gray");
        return description.isEmpty() ? input : input + " | " + description;
    }

    private byte[] readAsset(String name) throws IOException {
        return Model.readAll(getAssets().open(name));
    }

    @Override
    protected void onResume() {
        super.onResume();
        worker = new HandlerThread("inference");
        worker.start();
        workerHandler = new Handler(worker.getLooper());
        if (hasCameraPermission()) {
            startCamera();
        } else if (Build.VERSION.SDK_INT >= 23 && !askedForPermission) {
            askedForPermission = true; // ask once; a refusal is shown, not re-asked in a loop
            requestPermissions(new String[] {Manifest.permission.CAMERA}, REQUEST_CAMERA);
        }
    }

    @Override
    protected void onPause() {
        stopCamera();
        worker.quitSafely();
        worker = null;
        workerHandler = null;
        super.onPause();
    }

    private boolean hasCameraPermission() {
        return Build.VERSION.SDK_INT < 23
                || checkSelfPermission(Manifest.permission.CAMERA)
                        == PackageManager.PERMISSION_GRANTED;
    }

    @Override
    public void onRequestPermissionsResult(int requestCode, String[] permissions,
            int[] results) {
        if (requestCode != REQUEST_CAMERA) {
            return;
        }
        if (results.length > 0 && results[0] == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            overlay.show(new String[] {"No camera permission"},
                    "Grant the camera permission in Settings to classify frames.", modelLine);
        }
    }

    @Override
    public void surfaceCreated(SurfaceHolder holder) {
        surfaceReady = true;
        startCamera();
    }

    @Override
    public void surfaceChanged(SurfaceHolder holder, int format, int width, int height) {}

    @Override
    public void surfaceDestroyed(SurfaceHolder holder) {
        surfaceReady = false;
        stopCamera();
    }

    private void startCamera() {
        if (camera != null || !surfaceReady || classifier == null || !hasCameraPermission()
                || workerHandler == null) {
            return;
        }
        int id = backCameraId();
        try {
            camera = Camera.open(id);
        } catch (RuntimeException e) {
            overlay.show(new String[] {"Camera unavailable"}, String.valueOf(e.getMessage()),
                    modelLine);
            return;
        }
        Camera.CameraInfo info = new Camera.CameraInfo();
        Camera.getCameraInfo(id, info);
        int display = displayDegrees();
        frameRotation = info.facing == Camera.CameraInfo.CAMERA_FACING_FRONT
                ? (360 - (info.orientation + display) % 360) % 360
                : (info.orientation - display + 360) % 360;
        camera.setDisplayOrientation(frameRotation);
        Camera.Parameters params = camera.getParameters();
        Camera.Size size = choosePreviewSize(params.getSupportedPreviewSizes());
        params.setPreviewSize(size.width, size.height);
        List<String> focus = params.getSupportedFocusModes();
        if (focus.contains(Camera.Parameters.FOCUS_MODE_CONTINUOUS_PICTURE)) {
            params.setFocusMode(Camera.Parameters.FOCUS_MODE_CONTINUOUS_PICTURE);
        }
        camera.setParameters(params);
        frameWidth = size.width;
        frameHeight = size.height;
        try {
            camera.setPreviewDisplay(preview.getHolder());
        } catch (IOException e) {
            stopCamera();
            overlay.show(new String[] {"Camera error"}, e.toString(), modelLine);
            return;
        }
        int bytes = frameWidth * frameHeight * 3 / 2;
        camera.addCallbackBuffer(new byte[bytes]);
        camera.addCallbackBuffer(new byte[bytes]);
        camera.setPreviewCallbackWithBuffer(this);
        camera.startPreview();
    }

    private void stopCamera() {
        if (camera != null) {
            camera.setPreviewCallbackWithBuffer(null);
            camera.stopPreview();
            camera.release();
            camera = null;
        }
    }

    private static int backCameraId() {
        Camera.CameraInfo info = new Camera.CameraInfo();
        for (int i = 0; i < Camera.getNumberOfCameras(); i++) {
            Camera.getCameraInfo(i, info);
            if (info.facing == Camera.CameraInfo.CAMERA_FACING_BACK) {
                return i;
            }
        }
        return 0;
    }

    private int displayDegrees() {
        switch (getWindowManager().getDefaultDisplay().getRotation()) {
            case Surface.ROTATION_90:
                return 90;
            case Surface.ROTATION_180:
                return 180;
            case Surface.ROTATION_270:
                return 270;
            default:
                return 0;
        }
    }

    /** The supported preview size closest to 640x480 pixels (plenty for a small model). */
    private static Camera.Size choosePreviewSize(List<Camera.Size> sizes) {
        Camera.Size best = sizes.get(0);
        for (Camera.Size s : sizes) {
            if (Math.abs(s.width * s.height - 640 * 480)
                    < Math.abs(best.width * best.height - 640 * 480)) {
                best = s;
            }
        }
        return best;
    }

    @Override
    public void onPreviewFrame(final byte[] data, final Camera cam) {
        if (busy || workerHandler == null) {
            cam.addCallbackBuffer(data);
            return;
        }
        busy = true;
        final int width = frameWidth;
        final int height = frameHeight;
        final int rotation = frameRotation;
        workerHandler.post(new Runnable() {
            @Override
            public void run() {
                classify(data, width, height, rotation);
                runOnUiThread(new Runnable() {
                    @Override
                    public void run() {
                        if (camera == cam) {
                            cam.addCallbackBuffer(data);
                        }
                        busy = false;
                    }
                });
            }
        });
    }

    /** Runs on the worker thread. */
    private void classify(byte[] frame, int width, int height, int rotation) {
        final String[] lines;
        final String status;
        try {
            ImageSource image = Images.rotated(Images.nv21(frame, width, height), rotation);
            Classifier.Result r = classifier.classify(image, TOP_K);
            lines = new String[r.classes.length];
            for (int i = 0; i < lines.length; i++) {
                lines[i] = String.format(Locale.US, "%-14s %5.1f%%",
                        classifier.spec.label(r.classes[i]), 100 * r.probabilities[i]);
            }
            averageMillis = averageMillis == 0 ? r.inferenceMillis
                    : 0.9 * averageMillis + 0.1 * r.inferenceMillis;
            status = String.format(Locale.US,
                    "inference %.1f ms (avg %.1f), preprocessing %.1f ms; %s",
                    r.inferenceMillis, averageMillis, r.preprocessMillis,
                    NativeKernels.describe());
        } catch (ModelException e) {
            Log.e(TAG, "classification failed", e);
            final String message = e.getMessage();
            runOnUiThread(new Runnable() {
                @Override
                public void run() {
                    overlay.show(new String[] {"Inference error"}, message, modelLine);
                }
            });
            return;
        }
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                overlay.show(lines, status, modelLine);
            }
        });
    }
}
