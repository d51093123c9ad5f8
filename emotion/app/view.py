"""The components that show one result, built the same way wherever a result is shown: a new
result (Analyse), a reopened one (History), a finished recording (Live)."""

from dataclasses import dataclass, fields

import gradio as gr
from gradio.i18n import I18nData


def L(key: str) -> I18nData:
    """A label the browser shows in its own language (text.TEXT)."""
    return I18nData(key)


@dataclass
class ResultView:
    """The components that show one result (result_view() builds them; emotion.app.handlers fills them)."""

    headline: gr.Markdown
    tendencies: gr.Markdown
    scores: gr.Label
    timeline: gr.LinePlot
    segments: gr.HTML  # render.segment_table
    speakers: gr.HTML  # render_speakers.speakers_html: lanes, a summary per speaker, the turns
    player: gr.Audio
    dl_json: gr.DownloadButton
    dl_embedding: gr.DownloadButton
    dl_audio: gr.DownloadButton
    json_box: gr.Accordion  # shown with a result only
    log: gr.Textbox
    json: gr.JSON

    def outputs(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


def result_view(prefix: str = "") -> ResultView:
    """The components that show one result, in the caller's column: the same for a new result
    (Analyse) and a reopened one (History). The outputs' order (ResultView's fields) is not the
    layout's: the processing log is laid out under the headline."""
    headline = gr.Markdown(L("empty_result"), elem_id=f"{prefix}emotion_md")
    tendencies = gr.Markdown(elem_id=f"{prefix}tendencies_md")
    # the log right under the headline: it stays in place when a result fills the column below
    log = gr.Textbox(label=L("log"), lines=4, max_lines=8, interactive=False, elem_id=f"{prefix}process_log")
    # who felt what (a request with speakers): the answer asked for, so first under the log
    speakers = gr.HTML(visible=False, padding=False, elem_id=f"{prefix}speakers_html")  # its tables need the width
    scores = gr.Label(num_top_classes=16, show_heading=False, label=L("scores"), visible=False,
                      elem_id=f"{prefix}scores_label")
    timeline = gr.LinePlot(x="time", y="score", color="emotion", y_lim=[0, 1], label=L("timeline"), visible=False,
                           x_label_angle=-45, elem_id=f"{prefix}timeline_plot")
    segments = gr.HTML(visible=False, elem_id=f"{prefix}segments_df")
    player = gr.Audio(label=L("processed_audio"), interactive=False, visible=False, type="filepath",
                      elem_id=f"{prefix}processed_audio")
    with gr.Row():
        downloads = [gr.DownloadButton(L(key), visible=False, size="sm", elem_id=f"{prefix}dl_{key[9:]}")
                     for key in ("download_json", "download_embedding", "download_audio")]
    with gr.Accordion("result.json", open=False, visible=False, elem_id=f"{prefix}result_json_box") as box:
        data = gr.JSON(elem_id=f"{prefix}result_json")
    return ResultView(headline, tendencies, scores, timeline, segments, speakers, player, *downloads, box, log, data)
