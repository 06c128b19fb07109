//===- Png.cpp - SVG to PNG through librsvg -------------------------------===//

#include "attnc/Report/Png.h"

#include <cairo.h>
#include <librsvg/rsvg.h>

#include <cmath>

namespace attnc::report {

namespace {

cairo_status_t appendToString(void *closure, const unsigned char *data, unsigned int length) {
  static_cast<std::string *>(closure)->append(reinterpret_cast<const char *>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

} // namespace

bool svgToPng(const std::string &svg, std::string &png, std::string &error) {
  GError *gerror = nullptr;
  RsvgHandle *handle = rsvg_handle_new_from_data(
      reinterpret_cast<const guint8 *>(svg.data()), svg.size(), &gerror);
  if (!handle) {
    error = std::string("librsvg cannot read the picture: ") +
            (gerror ? gerror->message : "unknown error");
    if (gerror)
      g_error_free(gerror);
    return false;
  }
  gdouble width = 0, height = 0;
  if (!rsvg_handle_get_intrinsic_size_in_pixels(handle, &width, &height)) {
    error = "librsvg: the picture has no size in pixels";
    g_object_unref(handle);
    return false;
  }
  cairo_surface_t *surface = cairo_image_surface_create(
      CAIRO_FORMAT_ARGB32, static_cast<int>(std::ceil(width)), static_cast<int>(std::ceil(height)));
  cairo_t *cr = cairo_create(surface);
  RsvgRectangle viewport{0, 0, width, height};
  bool ok = rsvg_handle_render_document(handle, cr, &viewport, &gerror);
  if (!ok) {
    error = std::string("librsvg cannot render the picture: ") +
            (gerror ? gerror->message : "unknown error");
    if (gerror)
      g_error_free(gerror);
  }
  cairo_destroy(cr);
  if (ok) {
    png.clear();
    cairo_status_t status = cairo_surface_write_to_png_stream(surface, appendToString, &png);
    if (status != CAIRO_STATUS_SUCCESS) {
      error = std::string("cairo cannot encode PNG: ") + cairo_status_to_string(status);
      ok = false;
    }
  }
  cairo_surface_destroy(surface);
  g_object_unref(handle);
  return ok;
}

} // namespace attnc::report
