//===- TestPasses.h - Test passes of attnc (attnc-opt only) -----*- C++ -*-===//

#ifndef ATTNC_PASSES_TESTPASSES_H
#define ATTNC_PASSES_TESTPASSES_H

namespace attnc::attn {

/// Registers -test-print-block-classes.
void registerTestPasses();

} // namespace attnc::attn

#endif // ATTNC_PASSES_TESTPASSES_H
