//===- MaskPicture.h - The mask and its tiles as a picture ------*- C++ -*-===//

#ifndef ATTNC_REPORT_MASKPICTURE_H
#define ATTNC_REPORT_MASKPICTURE_H

#include "attnc/Mask/Tiles.h"
#include "attnc/Report/Report.h"

#include <string>

namespace attnc::report {

/// The largest number of cells per side of the token-level picture: longer
/// sequences are downsampled, each cell shaded by its density of allowed pairs.
inline constexpr int64_t kMaxCellsPerSide = 1024;

/// An SVG picture of the mask: the token-level mask (queries down, keys
/// across), the tile grid over it with FULL / PARTIAL / skipped tiles
/// coloured, labelled axes and a legend with density and waste.
std::string renderSvg(const mask::BlockSchedule &schedule, const Report &report);

} // namespace attnc::report

#endif // ATTNC_REPORT_MASKPICTURE_H
