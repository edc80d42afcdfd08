package xnor.tflite;

/** {@link ImageSource} implementations: packed arrays, camera NV21 frames and rotation. */
public final class Images {
    private Images() {}

    /** An image whose size is fixed at construction. */
    private abstract static class Sized implements ImageSource {
        private final int width, height, channels;

        Sized(int width, int height, int channels) {
            this.width = width;
            this.height = height;
            this.channels = channels;
        }

        public final int width() {
            return width;
        }

        public final int height() {
            return height;
        }

        public final int channels() {
            return channels;
        }
    }

    /** An interleaved uint8 [height, width, channels] array (channels 1 or 3). */
    public static ImageSource interleaved(final byte[] pixels, final int width, final int height,
            final int channels) {
        if ((channels != 1 && channels != 3) || width < 1 || height < 1
                || pixels.length != width * height * channels) {
            throw new ModelException("image of " + pixels.length + " bytes is not " + height
                    + "x" + width + "x" + channels + " (channels must be 1 or 3)");
        }
        return new Sized(width, height, channels) {
            public int get(int x, int y, int c) {
                return pixels[(y * width + x) * channels + c] & 0xff;
            }
        };
    }

    /**
     * A camera preview frame in NV21 (Y plane, then interleaved V/U at half resolution),
     * converted to RGB with the BT.601 limited-range equations that Android uses, each
     * channel rounded and clamped to 0–255 like a decoded photo.
     */
    public static ImageSource nv21(final byte[] frame, final int width, final int height) {
        if (width < 2 || height < 2 || frame.length < width * height * 3 / 2) {
            throw new ModelException("NV21 frame of " + frame.length + " bytes is too short for "
                    + width + "x" + height);
        }
        return new Sized(width, height, 3) {
            public int get(int x, int y, int c) {
                int yy = Math.max((frame[y * width + x] & 0xff) - 16, 0);
                int uv = width * height + (y >> 1) * width + (x & ~1);
                int v = (frame[uv] & 0xff) - 128;
                int u = (frame[uv + 1] & 0xff) - 128;
                float l = 1.164f * yy;
                float value;
                if (c == 0) {
                    value = l + 1.596f * v;
                } else if (c == 1) {
                    value = l - 0.813f * v - 0.391f * u;
                } else {
                    value = l + 2.018f * u;
                }
                return Math.min(Math.max(Math.round(value), 0), 255);
            }
        };
    }

    /** {@code source} rotated clockwise by 0, 90, 180 or 270 degrees. */
    public static ImageSource rotated(final ImageSource source, final int degrees) {
        final int r = ((degrees % 360) + 360) % 360;
        if (r % 90 != 0) {
            throw new ModelException("rotation must be a multiple of 90 degrees, got " + degrees);
        }
        if (r == 0) {
            return source;
        }
        boolean swap = r != 180;
        return new Sized(swap ? source.height() : source.width(),
                swap ? source.width() : source.height(), source.channels()) {
            public int get(int x, int y, int c) {
                if (r == 90) {
                    return source.get(y, source.height() - 1 - x, c);
                } else if (r == 180) {
                    return source.get(source.width() - 1 - x, source.height() - 1 - y, c);
                }
                return source.get(source.width() - 1 - y, x, c);
            }
        };
    }
}
