package xnor.tflite;

/**
 * A model that cannot be run: a malformed or truncated file, an unsupported operator or
 * tensor type, inconsistent shapes, or a bad input. The message names the problem (and the
 * operator or tensor involved) so that a wrong answer is never returned silently.
 */
public class ModelException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ModelException(String message) {
        super(message);
    }
}
