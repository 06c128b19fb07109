//===- MaskPicture.cpp - The mask and its tiles as a picture --------------===//
//
// Layers, bottom to top: skipped tiles (grey plot background), visited tiles
// (green FULL, orange PARTIAL), the token-level mask (navy, opacity = density
// of allowed pairs per cell), tile grid lines (when tiles are >= 6 px), then
// axes and the legend. Equal neighbouring cells of a row are merged into one
// rectangle, so a banded mask over a million tokens stays small.
//
//===----------------------------------------------------------------------===//

#include "attnc/Report/MaskPicture.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace attnc::report {

namespace {

constexpr double kMarginLeft = 80, kMarginTop = 70, kMarginRight = 30, kLegendHeight = 150;
/// Target side of the plot in pixels for short sequences (cells are scaled up).
constexpr int64_t kTargetPlotPixels = 640;
/// Tile grid lines are drawn only when tiles are at least this many pixels.
constexpr double kMinGridPixels = 6;
/// Density levels of the mask shading (cells of equal level merge).
constexpr int kShadeLevels = 64;
/// Opacity of a fully dense cell: the tile colour beneath stays visible.
constexpr double kMaxMaskOpacity = 0.8;

const char *kSkippedFill = "#eeeeee";
const char *kFullFill = "#cdebd3";
const char *kPartialFill = "#fbd9b4";
const char *kMaskFill = "#1b2f7a";

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.')
    s.pop_back();
  return s;
}

std::string escape(const std::string &text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  }
  return out;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Geometry of the plot: tokens per cell and pixels per cell on each axis.
struct Plot {
  int64_t rowsPerCell, keysPerCell, cellRows, cellCols;
  double pixelsPerCell, width, height;
  double x(double key) const { return kMarginLeft + key / keysPerCell * pixelsPerCell; }
  double y(double row) const { return kMarginTop + row / rowsPerCell * pixelsPerCell; }
};

Plot makePlot(int64_t nq, int64_t nk) {
  Plot p;
  p.rowsPerCell = std::max<int64_t>(1, ceilDiv(nq, kMaxCellsPerSide));
  p.keysPerCell = std::max<int64_t>(1, ceilDiv(nk, kMaxCellsPerSide));
  p.cellRows = ceilDiv(nq, p.rowsPerCell);
  p.cellCols = ceilDiv(nk, p.keysPerCell);
  int64_t longest = std::max<int64_t>(1, std::max(p.cellRows, p.cellCols));
  p.pixelsPerCell = std::max<int64_t>(1, kTargetPlotPixels / longest);
  p.width = p.cellCols * p.pixelsPerCell;
  p.height = p.cellRows * p.pixelsPerCell;
  return p;
}

void rect(std::ostream &os, double x0, double y0, double x1, double y1, const char *fill,
          double opacity = 1) {
  os << "<rect x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(x1 - x0)
     << "\" height=\"" << num(y1 - y0) << "\" fill=\"" << fill << "\"";
  if (opacity < 1)
    os << " fill-opacity=\"" << num(opacity) << "\"";
  os << "/>\n";
}

void text(std::ostream &os, double x, double y, const std::string &s, const char *anchor = "start",
          int size = 12, const char *extra = "") {
  os << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << size
     << "\" text-anchor=\"" << anchor << "\"" << extra << ">" << escape(s) << "</text>\n";
}

/// Visited tiles, merged into runs of equal class per tile row.
void drawTiles(std::ostream &os, const mask::BlockSchedule &schedule, const Plot &p, int64_t nq,
               int64_t nk) {
  std::vector<mask::ScheduledTile> row;
  int64_t bm = schedule.blockM(), bn = schedule.blockN();
  for (int64_t r = 0; r < schedule.rowTiles(); ++r) {
    schedule.row(r, row);
    double y0 = p.y(r * bm), y1 = p.y(std::min(nq, (r + 1) * bm));
    for (size_t i = 0; i < row.size();) {
      size_t j = i + 1;
      while (j < row.size() && row[j].cls == row[i].cls && row[j].colTile == row[j - 1].colTile + 1)
        ++j;
      rect(os, p.x(row[i].colTile * bn), y0, p.x(std::min(nk, (row[j - 1].colTile + 1) * bn)), y1,
           row[i].cls == mask::TileClass::Full ? kFullFill : kPartialFill);
      i = j;
    }
  }
}

/// The token-level mask: each cell's density of allowed pairs as opacity.
void drawMask(std::ostream &os, const mask::Geometry &g, const Plot &p, int64_t nq, int64_t nk) {
  std::vector<int64_t> candidates;
  for (int64_t cy = 0; cy < p.cellRows; ++cy) {
    int64_t row0 = cy * p.rowsPerCell, row1 = std::min(nq, row0 + p.rowsPerCell);
    g.candidateColumnTiles(row0, row1, p.keysPerCell, candidates);
    int runLevel = 0;
    int64_t runStart = -1, runEnd = -1;
    auto flush = [&]() {
      if (runStart >= 0 && runLevel > 0)
        rect(os, p.x(runStart * p.keysPerCell), p.y(row0),
             p.x(std::min(nk, runEnd * p.keysPerCell)), p.y(row1), kMaskFill,
             kMaxMaskOpacity * runLevel / kShadeLevels);
      runStart = -1;
    };
    for (int64_t cx : candidates) {
      mask::Rect cell{row0, row1, cx * p.keysPerCell, std::min(nk, (cx + 1) * p.keysPerCell)};
      mask::TileClass cls = g.classify(cell);
      double density = cls == mask::TileClass::Full    ? 1.0
                       : cls == mask::TileClass::Empty ? 0.0
                                                       : double(g.countAllowed(cell)) / cell.area();
      // Any allowed pair shows: partial cells get at least the faintest level.
      int level = density == 0 ? 0
                               : std::max(1, static_cast<int>(std::lround(density * kShadeLevels)));
      if (runStart >= 0 && (level != runLevel || cx != runEnd))
        flush();
      if (runStart < 0) {
        runStart = cx;
        runLevel = level;
      }
      runEnd = cx + 1;
    }
    flush();
  }
}

void drawGrid(std::ostream &os, const mask::BlockSchedule &schedule, const Plot &p, int64_t nq,
              int64_t nk) {
  double tileW = p.x(schedule.blockN()) - p.x(0), tileH = p.y(schedule.blockM()) - p.y(0);
  if (std::min(tileW, tileH) < kMinGridPixels)
    return;
  os << "<g stroke=\"#7a7a7a\" stroke-width=\"0.6\">\n";
  for (int64_t k = schedule.blockN(); k < nk; k += schedule.blockN())
    os << "<line x1=\"" << num(p.x(k)) << "\" y1=\"" << num(p.y(0)) << "\" x2=\"" << num(p.x(k))
       << "\" y2=\"" << num(p.y(nq)) << "\"/>\n";
  for (int64_t q = schedule.blockM(); q < nq; q += schedule.blockM())
    os << "<line x1=\"" << num(p.x(0)) << "\" y1=\"" << num(p.y(q)) << "\" x2=\"" << num(p.x(nk))
       << "\" y2=\"" << num(p.y(q)) << "\"/>\n";
  os << "</g>\n";
}

void drawAxes(std::ostream &os, const Plot &p, int64_t nq, int64_t nk) {
  os << "<rect x=\"" << num(kMarginLeft) << "\" y=\"" << num(kMarginTop) << "\" width=\""
     << num(p.width) << "\" height=\"" << num(p.height)
     << "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  text(os, kMarginLeft + p.width / 2, kMarginTop - 28, "key k \u2192", "middle", 13);
  os << "<text x=\"" << num(kMarginLeft - 52) << "\" y=\"" << num(kMarginTop + p.height / 2)
     << "\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(90 "
     << num(kMarginLeft - 52) << " " << num(kMarginTop + p.height / 2) << ")\">query row i "
     << "\u2192</text>\n";
  for (int i = 0; i <= 4; ++i) {
    int64_t k = nk * i / 4, q = nq * i / 4;
    double x = p.x(k), y = p.y(q);
    os << "<line x1=\"" << num(x) << "\" y1=\"" << num(kMarginTop - 4) << "\" x2=\"" << num(x)
       << "\" y2=\"" << num(kMarginTop) << "\" stroke=\"#333333\"/>\n";
    text(os, x, kMarginTop - 8, std::to_string(k), "middle", 10);
    os << "<line x1=\"" << num(kMarginLeft - 4) << "\" y1=\"" << num(y) << "\" x2=\""
       << num(kMarginLeft) << "\" y2=\"" << num(y) << "\" stroke=\"#333333\"/>\n";
    text(os, kMarginLeft - 6, y + 3, std::to_string(q), "end", 10);
  }
}

void drawLegend(std::ostream &os, const Report &r, const Plot &p) {
  double y = kMarginTop + p.height + 30, x = kMarginLeft;
  char line[256];
  std::snprintf(line, sizeof line, "density %.2f%% (%lld of %lld pairs allowed), waste %.2fx",
                100 * r.density, static_cast<long long>(r.allowedPairs),
                static_cast<long long>(r.densePairs), r.waste);
  text(os, x, y, line, "start", 12);
  std::snprintf(line, sizeof line, "tiles %lldx%lld: %lld full, %lld partial, %lld skipped (%s)",
                static_cast<long long>(r.blockM), static_cast<long long>(r.blockN),
                static_cast<long long>(r.tilesFull), static_cast<long long>(r.tilesPartial),
                static_cast<long long>(r.tilesSkipped),
                r.closedForm ? "closed-form schedule" : "table schedule");
  text(os, x, y + 18, line, "start", 12);
  struct Swatch {
    const char *fill;
    double opacity;
    const char *label;
  } swatches[] = {{kFullFill, 1, "full tile: no mask arithmetic"},
                  {kPartialFill, 1, "partial tile: masked per element"},
                  {kSkippedFill, 1, "skipped tile: never visited"},
                  {kMaskFill, kMaxMaskOpacity, "allowed pairs (shade = density per cell)"}};
  double sy = y + 36;
  for (const Swatch &s : swatches) {
    os << "<rect x=\"" << num(x) << "\" y=\"" << num(sy) << "\" width=\"14\" height=\"14\" fill=\""
       << s.fill << "\" fill-opacity=\"" << num(s.opacity)
       << "\" stroke=\"#555555\" stroke-width=\"0.5\"/>\n";
    text(os, x + 20, sy + 11, s.label, "start", 11);
    sy += 20;
  }
}

} // namespace

std::string renderSvg(const mask::BlockSchedule &schedule, const Report &report) {
  const mask::Geometry &g = schedule.geometry();
  int64_t nq = g.extent().nq, nk = g.extent().nk;
  Plot p = makePlot(nq, nk);
  double width = std::max(kMarginLeft + p.width + kMarginRight, 480.0);
  double height = kMarginTop + p.height + kLegendHeight;

  std::ostringstream os;
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\""
     << num(height) << "\" viewBox=\"0 0 " << num(width) << " " << num(height)
     << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n";
  os << "<title>" << escape(report.name) << ": " << escape(report.mask) << "</title>\n";
  rect(os, 0, 0, width, height, "#ffffff");
  text(os, kMarginLeft, 20, report.name + " \u2014 q " + std::to_string(nq) + " x kv " +
                                std::to_string(nk) + ", " + report.mask,
       "start", 14, " font-weight=\"bold\"");
  rect(os, p.x(0), p.y(0), p.x(nk), p.y(nq), kSkippedFill);
  drawTiles(os, schedule, p, nq, nk);
  drawMask(os, g, p, nq, nk);
  drawGrid(os, schedule, p, nq, nk);
  drawAxes(os, p, nq, nk);
  drawLegend(os, report, p);
  os << "</svg>\n";
  return os.str();
}

} // namespace attnc::report
