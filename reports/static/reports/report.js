// The report page: tiles turn into thumbnails without a reload, waiting tiles say why they wait, and
// uploads go one file at a time through the API with a progress bar per file and overall. Without
// JavaScript the form still posts every file at once to the report's upload URL.
(function () {
  "use strict";
  const grid = document.getElementById("images");
  const form = document.getElementById("upload-form");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const endpoint = form.dataset.api;
  // One file at a time: the images arrive in the order they were chosen (the report lists them in the
  // order they were added), and one stream already fills the uploader's link.
  const PARALLEL_UPLOADS = 1;

  // Patterns rendered for the id 0: "/reports/5/images/0/" becomes the id's own URL.
  function urlFor(pattern, id) { return pattern.replace(/\/0\/([^/]*\/)?$/, "/" + id + "/$1"); }
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function nameSpan(name) { const span = element("span", "name", name); span.title = name; return span; }

  function render(tile, image) {
    tile.dataset.status = image.status;
    tile.className = "tile " + image.status;
    tile.replaceChildren();
    const pageUrl = urlFor(grid.dataset.imageUrl, image.id);
    if (image.status === "ready") {
      const link = element("a", "picture"), thumb = image.renditions.thumb, img = element("img");
      link.href = pageUrl;
      Object.assign(img, {src: thumb.url, width: thumb.width, height: thumb.height, alt: ""});
      link.append(img);
      tile.append(link, nameSpan(image.name));
    } else if (image.status === "failed") {
      const link = element("a", "picture", "failed");
      link.href = pageUrl;
      tile.append(link, nameSpan(image.name), element("div", "reason", image.error || ""));
      if (grid.dataset.retryUrl && image.retry_may_help) {
        const retry = element("form", "retry"), token = element("input"), button = element("button", "", "Retry");
        retry.method = "post";
        retry.action = urlFor(grid.dataset.retryUrl, image.id);
        Object.assign(token, {type: "hidden", name: "csrfmiddlewaretoken", value: csrf});
        button.type = "submit";
        retry.append(token, button);
        tile.append(retry);
      }
    } else {
      const wait = image.waiting || {reason: "queued", text: "queued"};
      const picture = element("div", "picture wait", wait.text);
      picture.dataset.reason = wait.reason;
      tile.append(picture, nameSpan(image.name));
    }
  }

  // "8 ready · 3 failed · 2 waiting", as the server writes it, recounted from the tiles.
  function recount() {
    const tiles = [...grid.querySelectorAll("[data-status]")];
    const count = (status) => tiles.filter((tile) => tile.dataset.status === status).length;
    const parts = [[count("ready"), "ready"], [count("failed"), "failed"], [count("pending"), "waiting"]]
      .filter(([n]) => n > 0).map(([n, word]) => n.toLocaleString("en-US") + " " + word);
    document.getElementById("report-counts").textContent = parts.join(" · ") || "no images yet";
  }

  async function poll() {
    const pending = [...grid.querySelectorAll('[data-status="pending"]')];
    if (pending.length) {
      const ids = pending.map((tile) => tile.dataset.imageId).slice(0, 200).join(",");
      try {
        const response = await fetch(endpoint + "?ids=" + ids, {credentials: "same-origin"});
        if (response.ok) {
          for (const image of (await response.json()).images) {
            const tile = grid.querySelector('[data-image-id="' + image.id + '"]');
            const wait = tile && tile.querySelector(".wait");
            // A waiting tile is redrawn only when its reason changed: nothing flickers.
            if (tile && (image.status !== "pending" || !wait || wait.dataset.reason !== image.waiting?.reason)) {
              render(tile, image);
            }
          }
          recount();
        }
      } catch (error) { /* the next poll tries again */ }
    }
    setTimeout(poll, 1500);
  }

  // --- uploads ---
  const list = document.getElementById("uploads"), total = document.getElementById("uploads-total");
  const bar = document.getElementById("uploads-bar"), summary = document.getElementById("uploads-summary");
  const maxBytes = Number(form.dataset.maxBytes);
  const queue = [], rows = [];
  let running = 0;

  function megabytes(bytes) { return (bytes / 1048576).toLocaleString("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1}) + " MB"; }
  function overall() {
    // A refused file leaves the totals: "26 MB of 26 MB" for files that never went would not be true.
    const going = rows.filter((row) => row.state !== "refused");
    const size = going.reduce((sum, row) => sum + row.size, 0);
    const sent = going.reduce((sum, row) => sum + row.sent, 0);
    const done = rows.filter((row) => row.state !== "waiting" && row.state !== "uploading").length;
    const refused = rows.length - going.length;
    bar.value = size ? sent / size : 1;
    summary.textContent = done + " of " + rows.length + " files · " + megabytes(sent) + " of " + megabytes(size) +
      (refused ? " · " + refused + " refused" : "");
    total.hidden = false;
  }
  function rowFor(file) {
    const item = element("li"), progress = element("progress"), state = element("span", "state", "waiting");
    progress.max = file.size || 1;
    progress.value = 0;
    item.append(nameSpan(file.name), progress, state);
    list.append(item);
    const row = {file, size: file.size, sent: 0, state: "waiting", item, progress, stateText: state};
    rows.push(row);
    return row;
  }
  function finish(row, state, text) {
    row.state = state;
    row.stateText.textContent = text;
    row.stateText.className = "state " + state;
    row.progress.value = row.progress.max;
    overall();
    running -= 1;
    next();
  }
  function refusal(xhr) {
    try { return JSON.parse(xhr.responseText).error || "refused"; } catch (error) { /* not JSON */ }
    if (xhr.status === 413) return "larger than the server accepts";
    if (xhr.status === 429) return "too many uploads just now: try again in a while";
    return "the server answered " + xhr.status;
  }
  function upload(row) {
    running += 1;
    if (row.size > maxBytes) { finish(row, "refused", "larger than " + Math.round(maxBytes / 1048576) + " MB"); return; }
    row.state = "uploading";
    row.stateText.textContent = "uploading";
    const body = new FormData(), xhr = new XMLHttpRequest();
    body.append("file", row.file, row.file.name);
    body.append("report", form.dataset.report);
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.onprogress = (event) => {
      row.sent = Math.min(event.loaded, row.size);
      row.progress.value = row.sent;
      row.stateText.textContent = "uploading " + Math.floor(100 * row.sent / (row.size || 1)) + " %";
      overall();
    };
    xhr.onload = () => {
      if (xhr.status === 202) {
        const answer = JSON.parse(xhr.responseText);
        row.sent = row.size;
        addTile({id: answer.id, name: row.file.name, status: answer.status});
        finish(row, "uploaded", "uploaded");
      } else {
        finish(row, "refused", refusal(xhr));
      }
    };
    xhr.onerror = () => finish(row, "refused", "the upload was interrupted: check the connection and try again");
    xhr.send(body);
  }
  function next() {
    while (running < PARALLEL_UPLOADS && queue.length) upload(queue.shift());
  }
  function addTile(image) {
    const empty = grid.querySelector(".empty");
    if (empty) empty.remove();
    const tile = element("li");
    tile.dataset.imageId = image.id;
    // The report lists its images in the order they were added (by id here): parallel uploads that finish
    // out of order still land where a reload would show them.
    const later = [...grid.querySelectorAll("[data-image-id]")].find((other) => Number(other.dataset.imageId) > image.id);
    grid.insertBefore(tile, later || null);
    render(tile, image);
    recount();
  }
  function enqueue(files) {
    for (const file of files) queue.push(rowFor(file));
    overall();
    next();
  }

  // Choosing files starts their upload: the form's button is for pages without this script.
  const picker = form.querySelector("input[type=file]");
  form.querySelector("button[type=submit]").hidden = true;
  picker.addEventListener("change", () => {
    if (!picker.files.length) return;
    enqueue([...picker.files]);
    picker.value = "";
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const type of ["dragenter", "dragover"]) {
    form.addEventListener(type, (event) => { event.preventDefault(); form.classList.add("over"); });
  }
  form.addEventListener("dragleave", (event) => { if (!form.contains(event.relatedTarget)) form.classList.remove("over"); });
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("over");
    enqueue([...event.dataTransfer.files]);
  });

  setTimeout(poll, 1000);
})();
