/* tools/svg.h — a tiny SVG writer for the pictures `flashmask show` draws: a document, filled
 * rectangles, lines and escaped text, written to a FILE. Layer: tools (a helper of the CLI); it
 * knows nothing about masks and uses only the C standard library.
 */
#ifndef FM_TOOLS_SVG_H
#define FM_TOOLS_SVG_H

#include <stdio.h>

/* Writes s (NULL: nothing) as XML text: the five characters & < > " ' escaped, control
 * characters other than tab and newline (not allowed in XML 1.0) written as spaces. The JUnit
 * writer (tools/junit.c) uses it too. */
void xml_escaped(FILE *f, const char *s);

/* Opens the <svg> element of a width x height picture (user units = pixels), with a white
 * background. */
void svg_begin(FILE *f, double width, double height);

/* A filled rectangle. `cls` (may be NULL) becomes the class attribute, so that a reader (a test,
 * a stylesheet) can find the rectangles of one kind; `stroke` NULL means no outline. */
void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill,
              const char *stroke, double stroke_width, const char *cls);

/* A straight line. */
void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke,
              double stroke_width);

/* Text at (x, y) (the baseline); `anchor` is "start", "middle" or "end"; `rotate` degrees
 * about (x, y). The characters & < > " ' are escaped, so any string is safe to pass. */
void svg_text(FILE *f, double x, double y, double size, const char *anchor, double rotate,
              const char *text);

/* <title> of the picture (shown by viewers, read by tests); escaped like svg_text. */
void svg_title(FILE *f, const char *text);

/* Opens / closes a group <g class="cls"> (cls may be NULL). */
void svg_group_begin(FILE *f, const char *cls);
void svg_group_end(FILE *f);

/* Closes the document. Returns 0 when every write succeeded, -1 otherwise (ferror). */
int svg_end(FILE *f);

#endif
