"""Every word the web page shows, in English and Chinese.

Static labels go to the browser as a gr.I18n table (the browser's language picks; English
otherwise); text the server writes per request (results, errors, the processing log) is picked
here from the request's Accept-Language with lang_of().
"""

from __future__ import annotations

EN, ZH = "en", "zh"

TEXT: dict[str, tuple[str, str]] = {
    # page furniture (also sent to the browser as the I18n table)
    "title": ("# Speech emotion recognition", "# 语音情感识别"),
    "subtitle": ("Emotion2Vec+ · nine emotions · upload or record speech", "Emotion2Vec+ · 九种情感 · 上传或录制语音"),
    "tab_analyse": ("Analyse", "分析"),
    "tab_batch": ("Batch", "批量"),
    "tab_history": ("History", "历史"),
    "file_in": ("Audio or video file", "音频或视频文件"),
    "mic_in": ("Or record", "或录音"),
    "granularity": ("Granularity", "粒度"),
    "utterance": ("utterance", "整句"),
    "frame": ("frame", "逐帧"),
    "want_embedding": ("Extract embedding", "提取特征向量"),
    "example": ("Example audio", "加载示例"),
    "analyse": ("Analyse", "开始分析"),
    "limits": ("Up to {minutes:g} min of audio and {mb} MB per file; any audio or video format FFmpeg reads.",
               "每个文件最长 {minutes:g} 分钟、最大 {mb} MB；支持 FFmpeg 能读取的任何音频或视频格式。"),
    "empty_result": ("*The emotion and its confidence, all nine scores, a timeline (frame granularity) and "
                     "the downloads will appear here.*",
                     "*情感及其置信度、全部九项得分、时间线（逐帧粒度）和下载文件将显示在这里。*"),
    "scores": ("All scores", "全部得分"),
    "timeline": ("Timeline: the four strongest emotions, frame by frame", "时间线：最强的四种情感，逐帧"),
    "segments": ("Segments", "片段"),
    "processed_audio": ("Processed audio (16 kHz)", "处理后的音频（16 kHz）"),
    "log": ("Processing log", "处理日志"),
    "download_json": ("result.json", "result.json"),
    "download_embedding": ("embedding.npy", "embedding.npy"),
    "download_audio": ("processed_audio.wav", "processed_audio.wav"),
    "batch_files": ("Audio or video files", "音频或视频文件"),
    "batch_embeddings": ("Embeddings zip", "特征向量压缩包"),
    "batch_note": ("One row per file, utterance granularity. The CSV has the columns of `emotion batch`.",
                   "每个文件一行，整句粒度。CSV 的列与 `emotion batch` 相同。"),
    "analyse_all": ("Analyse all", "全部分析"),
    "batch_table": ("Results", "结果"),
    "download_csv": ("batch_results.csv", "batch_results.csv"),
    "download_zip": ("embeddings.zip", "embeddings.zip"),
    "history_choice": ("Your earlier results (this browser only)", "你之前的结果（仅此浏览器）"),
    "refresh": ("Refresh", "刷新"),
    "open": ("Open", "打开"),
    # written by the server per request
    "ready": ("Ready", "就绪"),
    "model": ("model", "模型"),
    "device": ("device", "设备"),
    "dtype": ("dtype", "精度"),
    "memory": ("memory", "内存"),
    "confidence": ("confidence", "置信度"),
    "also": ("Also", "其次"),
    "queued": ("⏳ {name}: waiting for the model, {ahead} ahead", "⏳ {name}：等待模型，前面还有 {ahead} 个请求"),
    "estimate": (" (about {seconds:.0f} s at the speed measured so far)", "（按目前测得的速度约需 {seconds:.0f} 秒）"),
    "analysing": ("⏳ {name}: analysing {duration:.1f} s of audio", "⏳ {name}：正在分析 {duration:.1f} 秒的音频"),
    "failed": ("⚠️ {error}", "⚠️ {error}"),
    "no_audio": ("no audio: upload a file, record, or load the example", "没有音频：请上传文件、录音或加载示例"),
    "shutting_down": ("the server is shutting down: try again in a moment", "服务器正在关闭，请稍后再试"),
    "no_files": ("no files: choose one or more audio files", "没有文件：请选择一个或多个音频文件"),
    "choose_result": ("choose a result first", "请先选择一个结果"),
    "no_such_result": ("{name}: no such result", "{name}：没有这个结果"),
    "silent": ("🔇 {name}: silent — no speech to judge", "🔇 {name}：静音，没有可判断的语音"),
    "log_file": ("file: {name}  duration: {duration:.2f} s  source rate: {rate} Hz  channels: {channels}",
                 "文件：{name}  时长：{duration:.2f} 秒  原始采样率：{rate} Hz  声道：{channels}"),
    "log_granularity": ("granularity: {granularity}  windows: {chunks}", "粒度：{granularity}  窗口数：{chunks}"),
    "log_times": ("decode: {decode:.1f} ms  resample: {resample:.1f} ms  inference: {inference:.1f} ms  "
                  "request: {request:.1f} ms",
                  "解码：{decode:.1f} 毫秒  重采样：{resample:.1f} 毫秒  推理：{inference:.1f} 毫秒  "
                  "请求：{request:.1f} 毫秒"),
    "log_saved": ("saved in: {path}", "保存于：{path}"),
    "log_warning": ("warning: {warning}", "警告：{warning}"),
    "log_error": ("failed: {error}", "失败：{error}"),
    "batch_progress": ("{done}/{total} · {name}", "{done}/{total} · {name}"),
    "batch_eta": (" · about {seconds:.0f} s left", " · 约剩 {seconds:.0f} 秒"),
    "batch_start": ("decoding {name}", "正在解码 {name}"),
    "batch_summary": ("{total} files: {ok} analysed, {failed} failed · CSV saved in `{path}`",
                      "{total} 个文件：{ok} 个已分析，{failed} 个失败 · CSV 保存于 `{path}`"),
    "batch_failed": ("failed: {items}", "失败：{items}"),
    "col_file": ("File", "文件"),
    "col_status": ("Status", "状态"),
    "col_emotion": ("Emotion", "情感"),
    "col_confidence": ("Confidence %", "置信度 %"),
    "col_duration": ("Duration (s)", "时长（秒）"),
    "col_start": ("Start (s)", "开始（秒）"),
    "col_end": ("End (s)", "结束（秒）"),
    "col_time": ("Time (s)", "时间（秒）"),
    "col_score": ("Score", "得分"),
    "ok": ("✓", "✓"),
    "history_item": ("{emotion} {confidence:.1f}% · {name} · {time}", "{emotion} {confidence:.1f}% · {name} · {time}"),
}

# Why a file was refused (emotion.audio.REASONS), in Chinese; the English reason follows in brackets.
REASONS_ZH = {
    "no_file": "文件不存在", "empty": "文件是空的", "not_audio": "不是可读的音频文件",
    "no_audio_stream": "文件中没有音轨", "undecodable": "音频数据无法解码", "no_samples": "文件中没有音频样本",
    "bad_sample_rate": "采样率不受支持", "bad_channels": "声道数不受支持", "format_change": "采样率或声道数中途改变",
    "not_finite": "含有非数值样本", "too_short": "音频太短", "too_long": "音频太长",
    "decode_timeout": "解码超时", "decoder_crashed": "解码器崩溃", "invalid": "无效的输入",
}


def lang_of(accept_language: str | None) -> str:
    """The page's language for a request: Chinese when the browser puts Chinese first."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return ZH if first.startswith("zh") else EN


def t(key: str, lang: str = EN, **values) -> str:
    """The text for `key` in `lang`, with its {placeholders} filled."""
    en, zh = TEXT[key]
    return (zh if lang == ZH else en).format(**values)


def translations(**values) -> dict[str, dict[str, str]]:
    """TEXT as gr.I18n wants it (locale -> key -> text): every entry whose placeholders `values`
    fill, the rest being per-request text."""
    table: dict[str, dict[str, str]] = {EN: {}, ZH: {}}
    for key in TEXT:
        try:
            table[EN][key], table[ZH][key] = t(key, EN, **values), t(key, ZH, **values)
        except (KeyError, ValueError, IndexError):
            continue
    return {"en": table[EN], "zh-CN": table[ZH], "zh": table[ZH]}
