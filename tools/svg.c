/* tools/svg.c — the tiny SVG writer of svg.h (layer: tools; standard library only). Numbers are
 * printed with at most two decimals, which is exact enough for pixels and keeps files small. */
#include "svg.h"

void xml_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* control characters other than tab and newline are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputc(' ', f);
            else fputc(*s, f);
        }
    }
}

void svg_begin(FILE *f, double width, double height)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, sans-serif\">\n",
            width, height, width, height);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width,
            height);
}

void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill,
              const char *stroke, double stroke_width, const char *cls)
{
    fprintf(f, "<rect");
    if (cls) {
        fputs(" class=\"", f);
        xml_escaped(f, cls);
        fputc('"', f);
    }
    fprintf(f, " x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"", x, y, w, h,
            fill);
    if (stroke) fprintf(f, " stroke=\"%s\" stroke-width=\"%.2f\"", stroke, stroke_width);
    fputs("/>\n", f);
}

void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke,
              double stroke_width)
{
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
               "stroke-width=\"%.2f\"/>\n", x1, y1, x2, y2, stroke, stroke_width);
}

void svg_text(FILE *f, double x, double y, double size, const char *anchor, double rotate,
              const char *text)
{
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" text-anchor=\"%s\"", x, y, size,
            anchor);
    if (rotate != 0.0) fprintf(f, " transform=\"rotate(%.1f %.2f %.2f)\"", rotate, x, y);
    fputc('>', f);
    xml_escaped(f, text);
    fputs("</text>\n", f);
}

void svg_title(FILE *f, const char *text)
{
    fputs("<title>", f);
    xml_escaped(f, text);
    fputs("</title>\n", f);
}

void svg_group_begin(FILE *f, const char *cls)
{
    fputs("<g", f);
    if (cls) {
        fputs(" class=\"", f);
        xml_escaped(f, cls);
        fputc('"', f);
    }
    fputs(">\n", f);
}

void svg_group_end(FILE *f) { fputs("</g>\n", f); }

int svg_end(FILE *f)
{
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
