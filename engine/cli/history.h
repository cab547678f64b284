// The commands that read the journal back: replay, resume, report, stats, and plan files for
// exec. Each is a function called by commands.cc once CLI11 has parsed the line.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "journal/journal.h"

namespace rb::cli {

struct HistoryCommon {
  std::string journal_path;
  bool json = false;
  bool no_color = false;
  bool verbose = false;
};

std::string journal_path_of(const HistoryCommon& c);

// Fills run.git_commit / git_dirty (and extra.git) when the runbook file is inside a git
// repository: HEAD's commit and whether the file differs from it (libgit2).
void git_source_info(RunRecord& run);

// Records this process's start time in the run (beside its pid), so that a run whose process is
// gone is told from one still going even after the pid is reused.
void process_info(RunRecord& run);
// Whether the process that ran `r` may still be at it: same host, the pid alive (not a zombie)
// and started when the run's did (older runs without a start time: a process named runbook).
bool still_running(const RunRecord& r);
// A run left "running" whose process is gone is shown as "crashed", with how to continue it.
void show_crashed(RunRecord& r);

// The run the runbook saw as `run.id`: a resume's original, followed back to the first run.
int64_t root_run_id(Journal& j, const RunRecord& r);

int cmd_replay(const HistoryCommon& c, const std::string& run, const std::string& against);

struct ResumeFlags {
  std::vector<std::string> params;  // name=value
  std::string param_file;           // --param-file ("" none)
  bool assume_done = false, redo = false, allow_param_change = false, yes = false;
  std::string wait_lock;  // a duration, or "" (refuse at once)
};
int cmd_resume(const HistoryCommon& c, const std::string& run, const ResumeFlags& f);

int cmd_report(const HistoryCommon& c, const std::string& run, const std::string& format,
               const std::string& out_file);
// format: "text" (the default; "json" with --json) or "openmetrics".
int cmd_stats(const HistoryCommon& c, const std::string& since, const std::string& format = "");

// The incident record of a run (and of the runs that resumed it), as data; report renders it.
json report_json(Journal& j, int64_t run_id);
std::string report_markdown(const json& report);

// exec --dry-run --save-plan. Before the dry-run: a run row reserved for the plan's execution
// (outcome "reserved", plan_id a new plan id), whose id the dry-run shows as `run.id`. After a
// dry-run that succeeded: save_plan writes the plan (returned) and gives the reserved row the
// dry-run's runbook, file and parameters; otherwise drop_plan_reservation deletes the row.
struct PlanReservation {
  std::string plan_id;
  int64_t run_id = 0;
};
PlanReservation reserve_plan_run(Journal& j, const std::string& file);
void drop_plan_reservation(Journal& j, const PlanReservation& r);
json save_plan(Journal& j, int64_t dry_run_id, const std::string& path, const PlanReservation& r);
// exec --plan: checks the plan still holds (file, modules, parameters, probe results, planned
// changes and what they act on) by dry-running again without journaling, with `run.id` the
// plan's reserved id and `time.now` answered with the rehearsal's values. `file_given` may be
// empty (the plan names its file); a file other than the plan's is refused (UsageError).
// Returns the drift (empty when it holds); fills plan_id, the file and the parameters to
// execute with, and whether this journal holds the reserved row.
struct PlanCheck {
  std::string plan_id;
  std::string file;         // the runbook to execute
  json drift = json::array();  // { what, planned, now, effect?: { seq, name, describe } }
  json params;              // typed, as planned
  int64_t executed_by = 0;  // a run that already executed it (or is executing it)
  int64_t planned_run_id = 0;  // the run id the plan was made for (0: an older plan)
  bool reserved = false;    // this journal holds that id, still reserved for the plan
};
PlanCheck check_plan(Journal& j, const std::string& plan_path, const std::string& file_given,
                     const std::map<std::string, std::string>& given);

}  // namespace rb::cli
