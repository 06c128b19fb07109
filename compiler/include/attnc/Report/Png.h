//===- Png.h - SVG to PNG through librsvg -----------------------*- C++ -*-===//

#ifndef ATTNC_REPORT_PNG_H
#define ATTNC_REPORT_PNG_H

#include <string>

namespace attnc::report {

/// Renders an SVG document to PNG bytes with librsvg and cairo. Returns false
/// and sets `error` if librsvg rejects the document or cairo fails.
bool svgToPng(const std::string &svg, std::string &png, std::string &error);

} // namespace attnc::report

#endif // ATTNC_REPORT_PNG_H
