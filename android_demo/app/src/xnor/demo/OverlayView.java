package xnor.demo;

import android.content.Context;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Paint;
import android.view.View;

/** Draws the classified square, the top-3 classes, and timings over the camera preview. */
final class OverlayView extends View {
    private final Paint frame = new Paint();
    private final Paint text = new Paint();
    private final Paint small = new Paint();
    private final Paint shade = new Paint();
    private String[] lines = new String[0];
    private String status = "";
    private String footer = "";

    OverlayView(Context context) {
        super(context);
        float density = context.getResources().getDisplayMetrics().density;
        frame.setColor(Color.argb(200, 255, 220, 0));
        frame.setStyle(Paint.Style.STROKE);
        frame.setStrokeWidth(2 * density);
        text.setColor(Color.WHITE);
        text.setTextSize(20 * density);
        text.setAntiAlias(true);
        small.setColor(Color.LTGRAY);
        small.setTextSize(13 * density);
        small.setAntiAlias(true);
        shade.setColor(Color.argb(150, 0, 0, 0));
    }

    /** Top-k lines ("label  87.1%"), a timing line, and a line about the model. */
    void show(String[] lines, String status, String footer) {
        this.lines = lines;
        this.status = status;
        this.footer = footer;
        invalidate();
    }

    @Override
    protected void onDraw(Canvas canvas) {
        int w = getWidth();
        int h = getHeight();
        // The model sees the centre square of the (upright) frame.
        int side = Math.min(w, h);
        int left = (w - side) / 2;
        int top = (h - side) / 2;
        canvas.drawRect(left, top, left + side, top + side, frame);
        float line = text.getTextSize() * 1.3f;
        float pad = text.getTextSize() * 0.5f;
        float boxHeight = pad * 2 + line * (lines.length + 1) + small.getTextSize() * 1.4f;
        canvas.drawRect(0, 0, w, boxHeight, shade);
        float y = pad + line * 0.8f;
        for (String l : lines) {
            canvas.drawText(l, pad, y, text);
            y += line;
        }
        canvas.drawText(status, pad, y, small);
        y += small.getTextSize() * 1.4f;
        canvas.drawText(footer, pad, y, small);
    }
}
