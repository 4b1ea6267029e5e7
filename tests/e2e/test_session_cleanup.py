"""Temporary files end with the browser session: a visitor's upload is spooled into the session's own folder, and
closing the tab removes that folder (Streamlit releases the session's resources when its websocket closes)."""
from __future__ import annotations

import threading
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from _e2e import class_zip, heading, main, new_page, settle, upload


class Deleted(FileSystemEventHandler):
    """Sets ``gone`` when the watched folder is deleted (inotify events: no polling, no sleeping)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.gone = str(folder), threading.Event()

    def on_deleted(self, event) -> None:
        if event.src_path == self.folder:
            self.gone.set()


def test_closing_the_tab_removes_the_sessions_temporary_folder(browser, server, tmp_path):
    sessions = server.workspace / "tmp" / "sessions"
    before = set(sessions.glob("*")) if sessions.is_dir() else set()
    page = new_page(browser)
    page.goto(f"{server.url}/data")
    heading(page, "1 · Data").wait_for()
    settle(page)
    [folder] = set(sessions.glob("*")) - before                 # one folder for this tab's session
    upload(page, "zip_upload", class_zip(tmp_path / "pets.zip", {"cat": (200, 30, 30), "dog": (30, 30, 200)}))
    main(page).get_by_text("Imported “pets”").wait_for(timeout=120_000)
    assert folder.is_dir() and list(folder.iterdir()) == []     # the spooled zip is gone once imported
    handler = Deleted(folder)
    observer = Observer()
    observer.schedule(handler, str(sessions))
    observer.start()
    try:
        page.context.close()
        assert handler.gone.wait(60) or not folder.exists(), f"{folder} is still there after the tab closed"
    finally:
        observer.stop()
        observer.join()
    assert not folder.exists()
