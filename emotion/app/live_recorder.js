() => {
  // The Live tab's own recorder, so that no recorded sample is lost (emotion/app/live_page.py,
  // docs/reliability.md#live-sessions). Gradio's streaming recorder drops chunks in the browser
  // while its stream is "waiting", and its server keeps only the newest chunk of a stream while
  // the handler runs: the stream feeds the live updates (latest wins), this keeps the recording.
  // A click on the Live tab's record button arms it; the next getUserMedia call (Gradio's, for
  // that recording) is tapped before Gradio gets the stream, so this starts first. Every sample
  // of the same MediaStream goes through an AudioWorklet, mixed to mono, as 16-bit PCM, up to
  // MAX_S seconds. On stop, window.emotionLive.stop() gives it as a WAV File, which the stop
  // event's inputs carry (Gradio uploads it like any file); one over the page's upload limit is
  // not sent (the upload would fail, and the stop with it): the server then saves the stream.
  const MAX_S = __MAX_S__;
  const ARM_MS = 2000;  // Gradio asks for the microphone as soon as its button is clicked
  const BLOCK = 4096;  // frames the worklet gathers before posting them
  const WORKLET = `
    class EmotionLiveTap extends AudioWorkletProcessor {
      constructor() {
        super();
        this.on = true; this.buf = new Float32Array(${BLOCK}); this.n = 0;
        this.port.onmessage = () => { this.on = false; this.flush(); this.port.postMessage('stopped'); };
      }
      flush() { if (this.n) { this.port.postMessage(this.buf.slice(0, this.n)); this.n = 0; } }
      process(inputs) {
        const x = inputs[0] && inputs[0][0];
        if (!this.on) return false;
        if (x) {
          for (let i = 0; i < x.length; i++) {
            this.buf[this.n++] = x[i];
            if (this.n === this.buf.length) this.flush();
          }
        }
        return true;
      }
    }
    registerProcessor('emotion-live-tap', EmotionLiveTap);`;
  const live = window.emotionLive = {armed: 0, tap: null, stop: async () => null};
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia || !window.AudioWorkletNode) {
    console.warn('live recorder: no AudioWorklet here; the streamed chunks are saved instead');
    return;
  }
  document.addEventListener('click', e => {
    if (e.target.closest && e.target.closest('#live_audio .record-button')) live.armed = Date.now();
  }, true);

  async function start(stream) {
    const ctx = new AudioContext();
    const url = URL.createObjectURL(new Blob([WORKLET], {type: 'text/javascript'}));
    try { await ctx.audioWorklet.addModule(url); } finally { URL.revokeObjectURL(url); }
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, 'emotion-live-tap', {
      numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: 'explicit',
      channelInterpretation: 'speakers'});
    const tap = {ctx, source, node, rate: ctx.sampleRate, blocks: [], frames: 0, over: 0,
                 cap: Math.round(MAX_S * ctx.sampleRate), started: Date.now()};
    tap.done = new Promise(resolve => {
      node.port.onmessage = e => {
        if (e.data === 'stopped') { resolve(); return; }
        const x = e.data, keep = Math.max(0, Math.min(x.length, tap.cap - tap.frames));
        if (keep) {
          const pcm = new Int16Array(keep);
          for (let i = 0; i < keep; i++) {
            const v = Math.max(-1, Math.min(1, x[i]));
            pcm[i] = v < 0 ? v * 32768 : v * 32767;
          }
          tap.blocks.push(pcm);
          tap.frames += keep;
        }
        tap.over += x.length - keep;  // past MAX_S: the server says the limit was reached
      };
    });
    source.connect(node);
    await ctx.resume();
    return tap;
  }

  const getUserMedia = media.getUserMedia.bind(media);
  media.getUserMedia = async constraints => {
    const ours = live.armed && Date.now() - live.armed < ARM_MS;  // asked now; granted maybe much later
    if (ours) live.armed = 0;
    const stream = await getUserMedia(constraints);
    if (ours && stream.getAudioTracks().length) {
      if (live.tap) live.tap.ctx.close();  // a recording never stopped through the page
      try {
        live.tap = await start(stream);
      } catch (err) {
        live.tap = null;
        console.warn('live recorder could not start; the streamed chunks are saved instead', err);
      }
    }
    return stream;
  };

  function wav(tap) {
    const bytes = tap.frames * 2, head = new DataView(new ArrayBuffer(44));
    const text = (at, s) => { for (let i = 0; i < s.length; i++) head.setUint8(at + i, s.charCodeAt(i)); };
    text(0, 'RIFF'); head.setUint32(4, 36 + bytes, true); text(8, 'WAVE');
    text(12, 'fmt '); head.setUint32(16, 16, true); head.setUint16(20, 1, true); head.setUint16(22, 1, true);
    head.setUint32(24, tap.rate, true); head.setUint32(28, tap.rate * 2, true); head.setUint16(32, 2, true);
    head.setUint16(34, 16, true); text(36, 'data'); head.setUint32(40, bytes, true);
    // named as the server names a streamed recording, by when it began (the page's local time)
    const d = new Date(tap.started), two = n => String(n).padStart(2, '0');
    const name = `live-recording-${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}_` +
                 `${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}.wav`;
    return new File([head.buffer, ...tap.blocks], name, {type: 'audio/wav'});
  }

  live.stop = async () => {
    const tap = live.tap;
    live.tap = null;
    if (!tap) return null;
    tap.node.port.postMessage('stop');
    // the worklet answers within one render quantum; a suspended context never does
    await Promise.race([tap.done, new Promise(resolve => setTimeout(resolve, 2000))]);
    tap.source.disconnect();
    tap.ctx.close();
    const limit = window.emotionUploadLimit || Infinity, bytes = 44 + 2 * tap.frames;
    live.last = {frames: tap.frames, rate: tap.rate, over: tap.over, wall_ms: Date.now() - tap.started,
                 sent: Boolean(tap.frames) && bytes <= limit, limit: limit};
    if (bytes > limit) console.warn(`live recorder: ${bytes} bytes is over the upload limit; the stream is saved`);
    return live.last.sent ? wav(tap) : null;
  };
}
