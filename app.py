"""BBB Explorer: the router (`st.navigation` over `pages/`) and the home page.

Run with `streamlit run app.py`. To add a page, add a line to `PAGES`: the home page lists it.
"""

import streamlit as st

st.set_page_config(layout="wide", page_title="BBB Explorer", page_icon=":material/blur_on:")

PAGES = (  # (file, title, icon, what the page shows: one line for the home page)
    (
        "pages/regression.py",
        "Regression",
        ":material/show_chart:",
        "a 1-D curve: BBB's predictive band (epistemic and total) and sampled functions next to "
        "the standard network's line, the ELBO terms as they train, RMSE, NLL and coverage.",
    ),
    (
        "pages/classification.py",
        "Classification",
        ":material/scatter_plot:",
        "a 2-D plane: maps of P(class 1), the predictive entropy and the mutual information for "
        "BBB and the baselines, with a far-away ring that a good model should be unsure about.",
    ),
    (
        "pages/images.py",
        "Images",
        ":material/image:",
        "digits, MNIST or Fashion-MNIST: calibration, uncertainty on unfamiliar images, a "
        "rotating digit and pruning by signal-to-noise ratio.",
    ),
    (
        "pages/priors.py",
        "Priors and weights",
        ":material/bar_chart:",
        "maximum likelihood, MAP (a Gaussian prior is L2 weight decay, a Laplace prior L1) and "
        "BBB's distribution over every weight: the losses, the weights against the prior, "
        "BBB's sigmas and pruning.",
    ),
)


def home() -> None:
    st.title("BBB Explorer")
    st.markdown(
        "See what **Bayes by Backprop** (Blundell et al., *Weight Uncertainty in Neural "
        "Networks*, ICML 2015) does to a neural network. Pick a page, move the prior, the KL "
        "weight or the sample counts, and watch the models retrain next to a standard network."
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("How Bayes by Backprop works")
        st.markdown(
            "Instead of one value per weight, BBB learns a Gaussian q(w | θ) = N(μ, σ²) per "
            "weight by minimising the variational free energy (the negative ELBO):"
        )
        st.latex(
            r"\mathcal{F}(\mathcal{D}, \theta) = \mathrm{KL}\big[q(w \mid \theta)\,\|\,p(w)\big]"
            r" - \mathbb{E}_{q(w \mid \theta)}\big[\log p(\mathcal{D} \mid w)\big]"
        )
        st.markdown(
            "The first term keeps q close to the prior, the second fits the data. To keep σ "
            "positive it is parameterised by ρ, and a weight is sampled by shifting and scaling "
            "noise, so gradients flow to μ and ρ (the reparameterisation trick):"
        )
        st.latex(
            r"\sigma = \log\big(1 + e^{\rho}\big), \qquad w = \mu + \sigma \odot \varepsilon,"
            r" \quad \varepsilon \sim \mathcal{N}(0, I)"
        )
        st.markdown(
            "The prior acts as a regulariser. A Gaussian prior is weight decay (L2), a Laplace "
            "prior is L1, and Blundell et al. use a scale mixture of a wide and a narrow Gaussian:"
        )
        st.latex(
            r"-\log \mathcal{N}(w; 0, \sigma_p^2) = "
            r"\underbrace{\frac{w^2}{2\sigma_p^2}}_{\text{L2}} + c"
        )
        st.latex(r"-\log \mathrm{Laplace}(w; 0, b) = \underbrace{\frac{|w|}{b}}_{\text{L1}} + c")
        st.latex(
            r"p(w) = \pi\,\mathcal{N}(w; 0, \sigma_1^2) + (1 - \pi)\,\mathcal{N}(w; 0, \sigma_2^2),"
            r"\quad \sigma_1 > \sigma_2"
        )
        st.markdown(
            "The **KL weight** multiplies the KL term: 1 is the true ELBO, 0 ignores the prior, "
            "and larger values make the prior win over the data."
        )
    with right:
        st.subheader("Two kinds of uncertainty")
        st.markdown(
            "- **Epistemic**: what the model does not know, because the data does not pin the "
            "weights down. It shrinks with more data and grows away from it. BBB shows it as "
            "the disagreement between networks sampled from q.\n"
            "- **Aleatoric**: noise in the data itself, which more data cannot remove. A noise "
            "model (a learned or per-input noise std) captures it.\n\n"
            "With S sampled networks, each predicting a mean μ_s(x) and a noise variance "
            "σ_s²(x), the predictive variance splits into the two parts:"
        )
        st.latex(
            r"\mathrm{Var}[y \mid x] \approx \underbrace{\tfrac{1}{S}\textstyle\sum_s "
            r"\sigma_s^2(x)}_{\text{aleatoric}} + \underbrace{\mathrm{Var}_s\big[\mu_s(x)\big]}"
            r"_{\text{epistemic}}"
        )
        st.markdown(
            "For classification the predictive entropy (total) splits into the expected "
            "entropy (aleatoric) and the mutual information between the label and the weights "
            "(epistemic)."
        )
        st.subheader("The pages")
        for page, (_, _, _, blurb) in zip(nav_pages[1:], PAGES, strict=True):
            st.page_link(page)
            st.caption(blurb[0].upper() + blurb[1:])
        st.caption(
            "Every setting lives in the URL: copy the address to share a view, seed included. "
            "Presets in the sidebar tell one story each."
        )


nav_pages = [st.Page(home, title="Home", icon=":material/home:", default=True)] + [
    st.Page(path, title=title, icon=icon) for path, title, icon, _ in PAGES
]
st.navigation(nav_pages).run()
