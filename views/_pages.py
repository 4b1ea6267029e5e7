"""The one table of the studio's pages: file, title, icon and what the home page says about each step.

app.py builds the navigation from it, the home page its step cards, the sidebar its checklist, and links
(``_ui.go`` / ``_ui.link``) find a page's file by its key.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    key: str            # the page's address (``/data``), also its file name
    title: str
    icon: str
    blurb: str = ""     # one line on the home page

    @property
    def file(self) -> str:
        return f"views/{self.key}.py"


HOME = Page("home", "Home", ":material/home:")
STEPS = (
    Page("data", "1 · Data", ":material/photo_library:", "Upload your images, one folder per class."),
    Page("model", "2 · Model", ":material/account_tree:", "Pick a pretrained backbone and what to freeze."),
    Page("train", "3 · Train", ":material/model_training:", "Choose a strategy and watch it learn."),
    Page("evaluate", "4 · Evaluate", ":material/analytics:", "See accuracy, confusions and mistakes."),
    Page("predict", "5 · Predict", ":material/image_search:", "Try the model on new photos."),
    Page("export", "6 · Export", ":material/download:", "Download the model for your own app."),
)
PAGES = {p.key: p.file for p in (HOME, *STEPS)}
STEP_TITLES = {p.key: p.title for p in STEPS}
