package xnor.tflite;

/** Raw 8-bit pixels (0–255) of an image with 1 (gray) or 3 (RGB) channels. */
public interface ImageSource {
    int width();

    int height();

    /** 1 (gray) or 3 (RGB). */
    int channels();

    /** Channel {@code c} of pixel (x, y), 0–255. */
    int get(int x, int y, int c);
}
