//! replset-tasks: any event bytes through the envelope to `Task::parse`
//! (what the handler does with a direct payload); a task that parses must
//! survive its own wire form unchanged, since lifecycle-hook writes tasks
//! with `to_json` and this function reads them back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::envelope::Payload;
use shared::mongo::task::Task;

fuzz_target!(|data: &[u8]| {
    for payload in ninelives_fuzz::payloads(data) {
        let Payload::Direct(body) = payload else {
            continue;
        };
        let task = Task::parse(&body.to_string());
        ninelives_fuzz::shown(&task);
        if let Ok(task) = task {
            let again = Task::parse(&task.to_json()).expect("a parsed task's own JSON parses");
            assert_eq!(
                again.to_json(),
                task.to_json(),
                "a task changed in its round trip"
            );
        }
    }
});
